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
  description = "PEM certificate chain covering the mesh host and every app host, stored in Secrets Manager."
  type        = string
}

variable "tls_key_pem" {
  description = "PEM private key of tls_cert_pem, stored in Secrets Manager."
  type        = string
  sensitive   = true
}

variable "catalog_yaml" {
  description = "App catalogue (YAML) written to /etc/postern/catalog.yaml on every node; a change rolls the nodes."
  type        = string
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
  description = "Gossip addresses (host:port, such as another region's node public IP and gossip_port, or a DNS name per region) that a node joins through (--join): any one that answers is enough, and the node rejoins them after a partition. Every region's nodes need at least one reachable seed; empty leaves each node alone (nodes find each other only through seeds). Ignored without gossip_keyring."
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
  description = "Public IPv4 ranges of every mesh node, this region's included (nodes gossip over their public addresses), allowed to reach gossip_port over TCP and UDP; empty opens it only to this region's nodes over private addresses."
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
