variable "primary_region" {
  description = "First AWS region of the deployment."
  type        = string
  default     = "eu-west-1"
}

variable "secondary_region" {
  description = "Second AWS region of the deployment."
  type        = string
  default     = "us-east-1"
}

variable "entra_tenant_id" {
  description = "Entra tenant id (Entra admin center, Overview)."
  type        = string
}

variable "route53_zone_id" {
  description = "Route 53 public hosted zone of domain."
  type        = string
}

variable "domain" {
  description = "DNS domain of the deployment; the auth service is auth.<domain>, the mesh API mesh.<domain>."
  type        = string
}

variable "app_display_name" {
  description = "Display name of the published app in Entra and My Apps."
  type        = string
  default     = "SmartMoney"
}

variable "app_host" {
  description = "External host name of the published app (its catalogue host)."
  type        = string
}

variable "catalog_file" {
  description = "Path of the app catalogue, uploaded as the S3 object that every mesh node reads and reloads live (a change rolls no node)."
  type        = string
}

variable "lambda_zip_path" {
  description = "Path of the zip written by `task build:lambda`."
  type        = string
}

variable "secrets_dir" {
  description = "Directory written by `task keys:generate` (session-keys.json, state-key, authority.key, gossip.keyring) and holding tls.crt and tls.key."
  type        = string
}

variable "meshd_package_url" {
  description = "HTTPS URL of the postern-meshd aarch64 .rpm the mesh nodes install."
  type        = string
}

variable "meshd_package_sha256" {
  description = "SHA-256 of that package."
  type        = string
}

variable "support_department" {
  description = "Department whose users form the SmartMoney-Support group (dynamic membership)."
  type        = string
  default     = "Customer Support"
}

variable "tags" {
  description = "Tags on every AWS resource."
  type        = map(string)
  default     = { project = "postern" }
}

variable "gossip_seeds" {
  description = "Further gossip seeds (host:port); usually empty: the nodes of both regions find each other by their postern-cluster tag."
  type        = list(string)
  default     = []
}

variable "gossip_peer_cidrs" {
  description = "Public IPv4 ranges (CIDR) allowed to reach the gossip port over TCP and UDP (nodes gossip over their public addresses, which Auto Scaling assigns at launch). The default opens it, as HTTPS and WireGuard are open: the gossip is encrypted with the keyring and a node joins only with an authority-signed node credential. Narrow it to your nodes' ranges (Elastic IPs, BYOIP) if you have them."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "cluster_name" {
  description = "Name of the mesh cluster: the nodes of both regions tagged postern-cluster=<cluster_name> find each other (no seeds to fill in)."
  type        = string
  default     = "postern"
}

variable "acme_directory_url" {
  description = "ACME directory URL (such as https://acme-v02.api.letsencrypt.org/directory): the mesh nodes obtain and renew their certificates by ACME, and tls.crt/tls.key are not needed. Empty uses tls.crt and tls.key from secrets_dir."
  type        = string
  default     = ""
}

variable "acme_email" {
  description = "Contact e-mail of the ACME account; empty means none."
  type        = string
  default     = ""
}
