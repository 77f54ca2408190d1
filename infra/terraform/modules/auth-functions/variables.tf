variable "name" {
  description = "Name prefix of every resource of this deployment (function, role, secrets, log group)."
  type        = string
  default     = "postern-auth"
}

variable "lambda_zip_path" {
  description = "Path of the deployment zip written by `task build:lambda` (bootstrap for linux/arm64; no catalogue)."
  type        = string
}

variable "mesh_authority_public_key" {
  description = "The mesh authority's Ed25519 public key (base64, `meshd authority public-key`; several comma-separated during a rotation): the function verifies with it the node credential of each signed sign-in request, and so needs no catalogue (POSTERN_MESH_AUTHORITY_PUBLIC_KEY). Never the private key."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9+/]{43}=(,[A-Za-z0-9+/]{43}=)*$", var.mesh_authority_public_key))
    error_message = "The mesh_authority_public_key must be one or more comma-separated base64 Ed25519 public keys (44 characters each), as `meshd authority public-key` prints them."
  }
}

variable "domain_name" {
  description = "Host name of the auth service, such as auth.example.com; the same in every region (Route 53 latency records pick the nearest)."
  type        = string
}

variable "route53_zone_id" {
  description = "Route 53 hosted zone that holds domain_name; receives the certificate validation and latency records."
  type        = string
}

variable "entra_tenant_id" {
  description = "Entra tenant id whose users (members and B2B guests) may sign in (POSTERN_ENTRA_TENANT_ID)."
  type        = string
}

variable "oidc_client_id" {
  description = "Client (application) id of the Entra app registration (POSTERN_OIDC_CLIENT_ID)."
  type        = string
}

variable "oidc_client_secret" {
  description = "Client secret of the app registration, stored in Secrets Manager; null means a public client (PKCE only)."
  type        = string
  default     = null
  sensitive   = true
}

variable "session_keys_json" {
  description = "Ed25519 session key set JSON from `task keys:generate` (session-keys.json), stored in Secrets Manager."
  type        = string
  sensitive   = true
}

variable "state_key_b64" {
  description = "Base64 32-byte key that encrypts the sign-in flow cookie (the state-key file from `task keys:generate`), stored in Secrets Manager."
  type        = string
  sensitive   = true
}

variable "extra_environment" {
  description = "Further POSTERN_* environment variables of the function (see functions/README.md), merged over the ones this module sets."
  type        = map(string)
  default     = {}
}

variable "memory_size" {
  description = "Memory of the function in MB (CPU scales with it)."
  type        = number
  default     = 256
}

variable "timeout_seconds" {
  description = "Function timeout in seconds; a sign-in calls Entra's token endpoint and Graph."
  type        = number
  default     = 15
}

variable "log_retention_days" {
  description = "Retention of the function's CloudWatch log group in days."
  type        = number
  default     = 30
}

variable "throttle_rate_limit" {
  description = "Steady-state requests per second the HTTP API accepts before answering 429."
  type        = number
  default     = 100
}

variable "throttle_burst_limit" {
  description = "Burst of requests the HTTP API accepts above the rate limit."
  type        = number
  default     = 200
}

variable "secret_recovery_window_days" {
  description = "Days a deleted secret can still be restored (0 deletes at once)."
  type        = number
  default     = 7
}

variable "tags" {
  description = "Tags added to every resource that takes tags."
  type        = map(string)
  default     = {}
}
