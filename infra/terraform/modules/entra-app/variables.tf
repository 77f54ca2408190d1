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
  description = "App roles by value (the string in the token's roles claim): display name and description. Role ids are derived from the value, so they stay stable."
  type = map(object({
    display_name = string
    description  = string
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
