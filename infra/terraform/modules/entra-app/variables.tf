variable "display_name" {
  description = "Display name of the app registration and its enterprise application, as users see it in My Apps."
  type        = string
}

variable "redirect_uris" {
  description = "Web redirect URIs: the auth functions' callback, https://<auth host>/callback."
  type        = list(string)
}

variable "logout_url" {
  description = "Front-channel logout URL (https://<auth host>/logout); null means none."
  type        = string
  default     = null
}

variable "app_roles" {
  description = "App roles by value (the string in the token's roles claim): display name, description and who may hold it (member_types: [\"User\"], the default, for people and groups; [\"Application\"] for daemons calling the API with client credentials; or both). Role ids are derived from the value, so they stay stable."
  type = map(object({
    display_name = string
    description  = string
    member_types = optional(list(string), ["User"])
  }))
  default = {}

  validation {
    condition     = alltrue([for r in values(var.app_roles) : length(r.member_types) > 0 && alltrue([for m in r.member_types : contains(["User", "Application"], m)])])
    error_message = "Each app role's member_types must list \"User\", \"Application\" or both."
  }
}

variable "identifier_uris" {
  description = "Application ID URIs that expose the app as an API, such as [\"api://records\"] (the aud of v1 access tokens requested through it, and the prefix of its scopes); empty exposes none. Name the URI, or the client id, in the catalogue's bearer: entra: audiences."
  type        = list(string)
  default     = []
}

variable "access_token_version" {
  description = "Version of the access tokens Entra issues for the API (accessTokenAcceptedVersion): 2 (issuer https://login.microsoftonline.com/<tenant>/v2.0, client in azp) or 1 (issuer https://sts.windows.net/<tenant>/, client in appid). Match it in the catalogue's bearer: entra: versions."
  type        = number
  default     = 2

  validation {
    condition     = contains([1, 2], var.access_token_version)
    error_message = "The access token version must be 1 or 2."
  }
}

variable "api_scopes" {
  description = "Delegated permissions of the API by value (the string in a delegated token's scp claim, such as Records.Read): display name, description, and whether only an admin may consent. Clients acting for a user request api://<uri>/<value>; the catalogue's policy may require them (require_scopes). Scope ids are derived from the value."
  type = map(object({
    display_name = string
    description  = string
    admin_only   = optional(bool, false)
  }))
  default = {}
}

variable "app_role_grants" {
  description = "Application permissions granted to daemons, by a name of your choice: the object id of the daemon's service principal and the value of an app role whose member_types include \"Application\". The daemon's client-credentials tokens for the API then carry the role."
  type = map(object({
    service_principal_object_id = string
    role                        = string
  }))
  default = {}
}

variable "groups" {
  description = "Security groups with dynamic membership, by display name: the membership rule and the app role value assigned to the group (\"\" means the app's default access)."
  type = map(object({
    description = string
    rule        = string
    role        = string
  }))
  default = {}
}

variable "group_membership_claims" {
  description = "Which groups the ID token's groups claim carries: SecurityGroup, ApplicationGroup (only groups assigned to the app), All or None."
  type        = list(string)
  default     = ["ApplicationGroup"]
}

variable "assignment_required" {
  description = "Whether only users assigned to the app (directly or through the groups) may sign in."
  type        = bool
  default     = true
}

variable "read_group_overage" {
  description = "Request delegated GroupMember.Read.All so the auth functions can read group overage from Graph (needs admin consent)."
  type        = bool
  default     = false
}

variable "credential" {
  description = "How the auth functions authenticate to Entra: \"secret\" (a client secret) or \"federated\" (a federated identity credential; see federated_issuer)."
  type        = string
  default     = "secret"

  validation {
    condition     = contains(["secret", "federated"], var.credential)
    error_message = "The credential must be \"secret\" or \"federated\"."
  }
}

variable "secret_end_date" {
  description = "RFC 3339 expiry of the client secret; null means the provider's default (two years)."
  type        = string
  default     = null
}

variable "federated_issuer" {
  description = "Issuer of the workload tokens trusted by the federated credential (credential = \"federated\")."
  type        = string
  default     = null
}

variable "federated_subject" {
  description = "Subject of the workload tokens trusted by the federated credential (credential = \"federated\")."
  type        = string
  default     = null
}

variable "owners" {
  description = "Object ids of the app registration's owners; empty means the identity running Terraform."
  type        = list(string)
  default     = []
}
