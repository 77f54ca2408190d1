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
  description = "Path of the app catalogue that the mesh nodes use (the same file as packed into the Lambda zip)."
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
  description = "Gossip seeds (host:port, such as a node's public IP and 7946) given to the nodes of both regions: list at least one node of each region so that the two regions form one cluster; a node joins through any seed that answers. Empty leaves each node alone; fill it in after the first apply, when the nodes have addresses."
  type        = list(string)
  default     = []
}

variable "gossip_peer_cidrs" {
  description = "Public IPv4 ranges (CIDR) of every mesh node of both regions, allowed to reach the gossip port over TCP and UDP (nodes gossip over their public addresses)."
  type        = list(string)
  default     = []
}
