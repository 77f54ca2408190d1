# One app, published end to end in two AWS regions: its Entra
# registration and access groups, the auth functions in both regions, and
# a mesh region in both regions, each on the region's default VPC.

locals {
  auth_host = "auth.${var.domain}"
  mesh_host = "mesh.${var.domain}"
  secrets = {
    session_keys  = file("${var.secrets_dir}/session-keys.json")
    state_key     = trimspace(file("${var.secrets_dir}/state-key"))
    authority_key = file("${var.secrets_dir}/authority.key")
    authority_pub = trimspace(file("${var.secrets_dir}/authority.pub"))
    gossip_keys   = file("${var.secrets_dir}/gossip.keyring")
    tls_cert      = var.acme_directory_url == "" ? file("${var.secrets_dir}/tls.crt") : ""
    tls_key       = var.acme_directory_url == "" ? file("${var.secrets_dir}/tls.key") : ""
  }
}

module "entra_app" {
  source = "../../modules/entra-app"

  display_name  = var.app_display_name
  redirect_uris = ["https://${local.auth_host}/callback"]
  logout_url    = "https://${local.auth_host}/logout"

  groups = {
    "SmartMoney-Support" = {
      description = "Customer Support staff: use SmartMoney."
      rule        = "user.department -eq \"${var.support_department}\""
      role        = ""
    }
  }
}

module "auth_primary" {
  source    = "../../modules/auth-functions"
  providers = { aws = aws.primary }

  lambda_zip_path           = var.lambda_zip_path
  domain_name               = local.auth_host
  route53_zone_id           = var.route53_zone_id
  entra_tenant_id           = module.entra_app.tenant_id
  oidc_client_id            = module.entra_app.client_id
  oidc_client_secret        = module.entra_app.client_secret
  session_keys_json         = local.secrets.session_keys
  state_key_b64             = local.secrets.state_key
  mesh_authority_public_key = local.secrets.authority_pub
  tags                      = var.tags
}

module "auth_secondary" {
  source    = "../../modules/auth-functions"
  providers = { aws = aws.secondary }

  lambda_zip_path           = var.lambda_zip_path
  domain_name               = local.auth_host
  route53_zone_id           = var.route53_zone_id
  entra_tenant_id           = module.entra_app.tenant_id
  oidc_client_id            = module.entra_app.client_id
  oidc_client_secret        = module.entra_app.client_secret
  session_keys_json         = local.secrets.session_keys
  state_key_b64             = local.secrets.state_key
  mesh_authority_public_key = local.secrets.authority_pub
  tags                      = var.tags
}

data "aws_vpc" "primary" {
  provider = aws.primary
  default  = true
}

data "aws_subnets" "primary" {
  provider = aws.primary
  filter {
    name   = "vpc-id"
    values = [data.aws_vpc.primary.id]
  }
}

data "aws_vpc" "secondary" {
  provider = aws.secondary
  default  = true
}

data "aws_subnets" "secondary" {
  provider = aws.secondary
  filter {
    name   = "vpc-id"
    values = [data.aws_vpc.secondary.id]
  }
}

module "mesh_primary" {
  source    = "../../modules/mesh-region"
  providers = { aws = aws.primary }

  region_label         = var.primary_region
  vpc_id               = data.aws_vpc.primary.id
  subnet_ids           = data.aws_subnets.primary.ids
  meshd_package_url    = var.meshd_package_url
  meshd_package_sha256 = var.meshd_package_sha256
  authority_key        = local.secrets.authority_key
  tls_cert_pem         = var.acme_directory_url == "" ? local.secrets.tls_cert : ""
  tls_key_pem          = var.acme_directory_url == "" ? local.secrets.tls_key : ""
  gossip_keyring       = local.secrets.gossip_keys
  gossip_seeds         = var.gossip_seeds
  gossip_peer_cidrs    = var.gossip_peer_cidrs
  discovery_regions    = [var.primary_region, var.secondary_region]
  cluster_name         = var.cluster_name
  public_url           = "https://mesh-${var.primary_region}.${var.domain}"
  auth_url             = module.auth_primary.auth_url
  catalog_s3_uri       = "s3://${aws_s3_object.catalog.bucket}/${aws_s3_object.catalog.key}"
  catalog_s3_region    = var.primary_region
  acme_directory_url   = var.acme_directory_url
  acme_email           = var.acme_email
  route53_zone_id      = var.route53_zone_id
  hostnames            = [local.mesh_host, "mesh-${var.primary_region}.${var.domain}", var.app_host]
  tags                 = var.tags
}

module "mesh_secondary" {
  source    = "../../modules/mesh-region"
  providers = { aws = aws.secondary }

  region_label         = var.secondary_region
  vpc_id               = data.aws_vpc.secondary.id
  subnet_ids           = data.aws_subnets.secondary.ids
  meshd_package_url    = var.meshd_package_url
  meshd_package_sha256 = var.meshd_package_sha256
  authority_key        = local.secrets.authority_key
  tls_cert_pem         = var.acme_directory_url == "" ? local.secrets.tls_cert : ""
  tls_key_pem          = var.acme_directory_url == "" ? local.secrets.tls_key : ""
  gossip_keyring       = local.secrets.gossip_keys
  gossip_seeds         = var.gossip_seeds
  gossip_peer_cidrs    = var.gossip_peer_cidrs
  discovery_regions    = [var.primary_region, var.secondary_region]
  cluster_name         = var.cluster_name
  public_url           = "https://mesh-${var.secondary_region}.${var.domain}"
  auth_url             = module.auth_primary.auth_url
  catalog_s3_uri       = "s3://${aws_s3_object.catalog.bucket}/${aws_s3_object.catalog.key}"
  catalog_s3_region    = var.primary_region
  acme_directory_url   = var.acme_directory_url
  acme_email           = var.acme_email
  route53_zone_id      = var.route53_zone_id
  hostnames            = [local.mesh_host, "mesh-${var.secondary_region}.${var.domain}", var.app_host]
  tags                 = var.tags
}

# The catalogue: one S3 object that every mesh node of both regions reads
# with its instance role and reloads live. Changing catalog_file and
# applying replaces the object only: no node rolls, no function redeploys
# (the auth functions hold no catalogue).

resource "aws_s3_bucket" "config" {
  provider      = aws.primary
  bucket_prefix = "postern-config-"
  tags          = var.tags
}

resource "aws_s3_bucket_public_access_block" "config" {
  provider                = aws.primary
  bucket                  = aws_s3_bucket.config.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "config" {
  provider = aws.primary
  bucket   = aws_s3_bucket.config.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "config" {
  provider = aws.primary
  bucket   = aws_s3_bucket.config.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_object" "catalog" {
  provider     = aws.primary
  bucket       = aws_s3_bucket.config.id
  key          = "catalog.yaml"
  content      = file(var.catalog_file)
  content_type = "application/yaml"
  tags         = var.tags
}
