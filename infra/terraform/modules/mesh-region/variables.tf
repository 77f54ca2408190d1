variable "name" {
  description = "Name prefix of this region's mesh resources (load balancer, group, role, secrets)."
  type        = string
  default     = "postern-mesh"
}

variable "region_label" {
  description = "Region label meshd reports (--region) and the catalogue's connector groups refer to, such as eu-west-1."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the mesh nodes and their load balancer."
  type        = string
}

variable "subnet_ids" {
  description = "Public subnets (at least two zones) for the nodes and the load balancer; nodes get public IPs for WireGuard."
  type        = list(string)
}

variable "instance_type" {
  description = "EC2 instance type of a mesh node (arm64, since the AMI is Amazon Linux 2023 for arm64)."
  type        = string
  default     = "t4g.small"
}

variable "desired_nodes" {
  description = "Number of mesh nodes the Auto Scaling group keeps running."
  type        = number
  default     = 2
}

variable "max_nodes" {
  description = "Upper bound of the Auto Scaling group (room for instance refresh)."
  type        = number
  default     = 4
}

variable "ami_ssm_parameter" {
  description = "SSM public parameter naming the node image; the default is the latest Amazon Linux 2023 for arm64."
  type        = string
  default     = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"
}

variable "meshd_package_url" {
  description = "HTTPS URL of the postern-meshd .rpm (aarch64) that the nodes install (from `task package`)."
  type        = string
}

variable "meshd_package_sha256" {
  description = "SHA-256 of the package at meshd_package_url; a node refuses any other file."
  type        = string
}

variable "authority_key" {
  description = "Mesh authority key file content (from `meshd authority init`), stored in this region's Secrets Manager."
  type        = string
  sensitive   = true
}

variable "tls_cert_pem" {
  description = "PEM certificate chain covering the mesh host and every app host, stored in Secrets Manager. Empty with acme_directory_url: the nodes get their certificates by ACME."
  type        = string
  default     = ""
}

variable "tls_key_pem" {
  description = "PEM private key of tls_cert_pem, stored in Secrets Manager (empty when tls_cert_pem is)."
  type        = string
  default     = ""
  sensitive   = true
}

variable "acme_directory_url" {
  description = "ACME directory URL (such as https://acme-v02.api.letsencrypt.org/directory): the nodes obtain and renew the certificates of the catalogue's hosts and of public_url by TLS-ALPN-01 on port 443 (--acme-directory), kept in their state directory. Empty means tls_cert_pem."
  type        = string
  default     = ""

  validation {
    condition     = var.acme_directory_url == "" || can(regex("^https://[^\\s]+$", var.acme_directory_url))
    error_message = "The acme_directory_url must be empty or an https URL."
  }
}

variable "acme_email" {
  description = "Contact e-mail of the ACME account (--acme-email); empty means none."
  type        = string
  default     = ""
}

variable "catalog_s3_uri" {
  description = "The app catalogue's S3 object, s3://bucket/key, that every node of every region reads with its instance role and reloads live (--catalog): changing the object changes the catalogue everywhere within seconds, and rolls no node."
  type        = string

  validation {
    condition     = can(regex("^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[^\\s]+$", var.catalog_s3_uri))
    error_message = "The catalog_s3_uri must be s3://bucket/key."
  }
}

variable "catalog_s3_region" {
  description = "AWS region of the catalogue's bucket (--aws-region)."
  type        = string
}

variable "auth_url" {
  description = "The auth functions' base URL (--auth-url, such as https://auth.example.com): enables pre-authenticated apps. Empty serves passthrough apps only."
  type        = string
  default     = ""

  validation {
    condition     = var.auth_url == "" || can(regex("^https://[^/\\s]+$", var.auth_url))
    error_message = "The auth_url must be empty or https://host."
  }
}

variable "cluster_name" {
  description = "Name of the mesh cluster: every node of every region is tagged postern-cluster=<cluster_name>, which the nodes look for to find each other."
  type        = string
  default     = "postern"
}

variable "discovery_regions" {
  description = "AWS regions whose nodes tagged postern-cluster=<cluster_name> a node joins (--join-discover, by their public addresses): every region of the mesh, this one included. Empty means gossip_seeds only."
  type        = list(string)
  default     = []
}

variable "meshd_extra_args" {
  description = "Further `meshd run` flags, one list element per word (for example [\"--log-level\", \"debug\"])."
  type        = list(string)
  default     = []
}

variable "wireguard_port" {
  description = "UDP port of WireGuard on every node (--wg-listen); open to the connectors."
  type        = number
  default     = 51820
}

variable "https_ingress_cidrs" {
  description = "IPv4 ranges allowed to reach HTTPS (443): the users and the connectors' enrolment and attach calls."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "wireguard_ingress_cidrs" {
  description = "IPv4 ranges allowed to send WireGuard: the connectors' public (NAT) addresses, or everywhere."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "gossip_port" {
  description = "TCP and UDP port of the gossip between mesh nodes (memberlist)."
  type        = number
  default     = 7946
}

variable "gossip_keyring" {
  description = "Gossip keyring shared by every mesh node of every region: the file `meshd gossip keygen` writes (base64 16-, 24- or 32-byte keys, one per line, the first encrypting, the others still accepted; # comments allowed; a malformed keyring fails the plan without showing it). Nodes get it from Secrets Manager as /etc/postern/gossip.keyring (0600). Empty runs each node alone, without gossip or relay."
  type        = string
  default     = ""
  sensitive   = true
}

variable "gossip_seeds" {
  description = "Further gossip addresses (host:port) that a node joins through (--join), besides those found in discovery_regions: any one that answers is enough, and the node rejoins them after a partition. Usually empty. Ignored without gossip_keyring."
  type        = list(string)
  default     = []

  validation {
    condition     = length([for s in var.gossip_seeds : s if !can(regex("^(?:\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$", s))]) == 0
    error_message = "Each gossip seed must be host:port or [IPv6]:port, such as 203.0.113.10:7946."
  }
}

variable "public_url" {
  description = "HTTPS base URL of this region's nodes that connectors attach at (--public-url, for example https://mesh-eu-west-1.example.com, a name that resolves to this region only); tls_cert_pem must cover it. Empty omits --public-url, leaving meshd's default (https:// + --listen), which other regions cannot reach: set it whenever gossip_keyring is set."
  type        = string
  default     = ""

  validation {
    condition     = var.public_url == "" || can(regex("^https://[^/\\s]+/?$", var.public_url))
    error_message = "The public_url must be empty or https://host[:port], such as https://mesh-eu-west-1.example.com."
  }
}

variable "gossip_peer_cidrs" {
  description = "Public IPv4 ranges allowed to reach gossip_port over TCP and UDP: every mesh node's, this region's included (nodes gossip over their public addresses). Auto Scaling gives nodes addresses unknown before they start, so the example opens 0.0.0.0/0: the gossip is encrypted with the keyring and every node must show an authority-signed node credential, as for HTTPS and WireGuard, which are open too. Empty opens it only to this region's nodes over private addresses."
  type        = list(string)
  default     = []
}

variable "route53_zone_id" {
  description = "Route 53 hosted zone of the mesh and app host names."
  type        = string
}

variable "hostnames" {
  description = "Host names served by this mesh (the mesh API host and every app host); each gets a latency record for this region."
  type        = list(string)
}

variable "tags" {
  description = "Tags added to every resource that takes tags."
  type        = map(string)
  default     = {}
}
