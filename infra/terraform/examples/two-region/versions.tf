terraform {
  required_version = ">= 1.6.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
    azuread = {
      source  = "hashicorp/azuread"
      version = "~> 3.0"
    }
  }

  # Terraform state holds the secrets passed in below (session keys, the
  # client secret, the mesh authority key): keep it in an encrypted,
  # access-controlled backend. Uncomment and fill in before the first apply.
  # backend "s3" {
  #   bucket       = "example-postern-tfstate"
  #   key          = "postern/two-region.tfstate"
  #   region       = "eu-west-1"
  #   encrypt      = true
  #   use_lockfile = true
  # }
}

provider "aws" {
  alias  = "primary"
  region = var.primary_region
}

provider "aws" {
  alias  = "secondary"
  region = var.secondary_region
}

provider "azuread" {
  tenant_id = var.entra_tenant_id
}
