# Variables of the two-region example, one line each. Copy this file, fill
# in your values, and pass it with TFVARS=... to `task deploy`.

# AWS regions of the two mesh regions and auth function copies.
primary_region   = "eu-west-1"
secondary_region = "us-east-1"

# Your Entra tenant id (Entra admin center > Overview > Tenant ID).
entra_tenant_id = "3f6c1a2e-8b4d-4c7e-9a15-0d2b7e6f4c81"

# Route 53 hosted zone id of the domain below (Route 53 > Hosted zones).
route53_zone_id = "Z0123456789EXAMPLE"

# Domain of the deployment: auth.<domain> and mesh.<domain> are created.
domain = "example.com"

# Name of the app in Entra and My Apps.
app_display_name = "SmartMoney"

# Host name users open; must equal the app's host in the catalogue.
app_host = "smartmoney.apps.example.com"

# App catalogue, uploaded as one S3 object that every mesh node reads and
# reloads live; applying a change replaces the object only (no node rolls,
# the auth functions hold no catalogue).
catalog_file = "../../../catalog.yaml"

# Zip built by `task build:lambda` (relative to this directory).
lambda_zip_path = "../../../../dist/auth-arm64.zip"

# Secrets directory: keys, authority.key, authority.pub and gossip.keyring
# from `task keys:generate`; tls.crt/tls.key for mesh.<domain>,
# mesh-<region>.<domain> (both regions) and the app host, unless
# acme_directory_url is set.
secrets_dir = "../../../secrets"

# Certificates by ACME instead of tls.crt/tls.key (empty: the files), and
# the ACME account's contact.
acme_directory_url = "https://acme-v02.api.letsencrypt.org/directory"
acme_email         = "ops@example.com"

# Where the mesh nodes download postern-meshd (aarch64 .rpm from `task package`) and its SHA-256.
meshd_package_url    = "https://downloads.example.com/postern/0.1.0/postern-meshd-0.1.0-1.aarch64.rpm"
meshd_package_sha256 = "0000000000000000000000000000000000000000000000000000000000000000"

# Users whose department is this form the SmartMoney-Support group.
support_department = "Customer Support"

# Mesh cluster: the nodes of both regions find each other by the tag
# postern-cluster=<cluster_name> (nothing to fill in after the apply).
cluster_name      = "postern"
gossip_seeds      = []
gossip_peer_cidrs = ["0.0.0.0/0"]

# Tags on every AWS resource.
tags = { project = "postern", environment = "production" }
