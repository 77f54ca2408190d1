# The Entra side of one published app: the app registration the auth
# functions sign users in with (redirect URIs, groups claim, optional
# claims, app roles, credential), its enterprise application (service
# principal) with assignment required, and security groups with dynamic
# membership rules assigned to the app's roles. This replaces the portal
# steps "register the app" and "assign users and groups".
#
# Optionally it also exposes the app as an API for callers that are not
# browsers (Postern's bearer tokens, catalogue key bearer: entra): an
# Application ID URI, delegated permissions (oauth2 permission scopes) for
# native and web clients acting for users, app roles for daemons
# (allowed_member_types = ["Application"]) and grants of those roles to
# the daemons' service principals.

data "azuread_client_config" "current" {}

locals {
  owners = length(var.owners) > 0 ? var.owners : [data.azuread_client_config.current.object_id]
  # Stable role ids derived from the app and the role value.
  role_ids = { for value, _ in var.app_roles : value => uuidv5("url", "urn:postern:${var.display_name}:role:${value}") }
  # Stable scope ids, likewise.
  scope_ids = { for value, _ in var.api_scopes : value => uuidv5("url", "urn:postern:${var.display_name}:scope:${value}") }
  # Microsoft Graph and its delegated permissions.
  graph_app_id       = "00000003-0000-0000-c000-000000000000"
  graph_user_read    = "e1fe6dd8-ba31-4d61-89e7-88639da4683d"
  graph_group_member = "bc024368-1153-4739-b217-4326f2e966d0"
  # The app's default access when a group is assigned no role.
  default_access = "00000000-0000-0000-0000-000000000000"
}

resource "azuread_application" "app" {
  display_name            = var.display_name
  owners                  = local.owners
  sign_in_audience        = "AzureADMyOrg"
  group_membership_claims = var.group_membership_claims

  identifier_uris = var.identifier_uris

  api {
    requested_access_token_version = var.access_token_version

    dynamic "oauth2_permission_scope" {
      for_each = var.api_scopes
      content {
        id                         = local.scope_ids[oauth2_permission_scope.key]
        value                      = oauth2_permission_scope.key
        type                       = oauth2_permission_scope.value.admin_only ? "Admin" : "User"
        admin_consent_display_name = oauth2_permission_scope.value.display_name
        admin_consent_description  = oauth2_permission_scope.value.description
        user_consent_display_name  = oauth2_permission_scope.value.display_name
        user_consent_description   = oauth2_permission_scope.value.description
        enabled                    = true
      }
    }
  }

  web {
    redirect_uris = var.redirect_uris
    logout_url    = var.logout_url

    implicit_grant {
      access_token_issuance_enabled = false
      id_token_issuance_enabled     = false
    }
  }

  optional_claims {
    id_token {
      name = "auth_time"
    }
    id_token {
      name = "acrs"
    }
    id_token {
      name = "groups"
    }
  }

  dynamic "app_role" {
    for_each = var.app_roles
    content {
      allowed_member_types = app_role.value.member_types
      description          = app_role.value.description
      display_name         = app_role.value.display_name
      enabled              = true
      id                   = local.role_ids[app_role.key]
      value                = app_role.key
    }
  }

  required_resource_access {
    resource_app_id = local.graph_app_id

    resource_access {
      id   = local.graph_user_read
      type = "Scope"
    }

    dynamic "resource_access" {
      for_each = var.read_group_overage ? [local.graph_group_member] : []
      content {
        id   = resource_access.value
        type = "Scope"
      }
    }
  }
}

resource "azuread_service_principal" "app" {
  client_id                    = azuread_application.app.client_id
  app_role_assignment_required = var.assignment_required
  owners                       = local.owners

  feature_tags {
    enterprise = true
  }
}

resource "azuread_application_password" "auth" {
  count          = var.credential == "secret" ? 1 : 0
  application_id = azuread_application.app.id
  display_name   = "postern auth functions"
  end_date       = var.secret_end_date
}

resource "azuread_application_federated_identity_credential" "auth" {
  count          = var.credential == "federated" ? 1 : 0
  application_id = azuread_application.app.id
  display_name   = "postern-auth-functions"
  description    = "Workload identity of the Postern auth functions."
  audiences      = ["api://AzureADTokenExchange"]
  issuer         = var.federated_issuer
  subject        = var.federated_subject
}

resource "azuread_group" "access" {
  for_each         = var.groups
  display_name     = each.key
  description      = each.value.description
  security_enabled = true
  types            = ["DynamicMembership"]
  owners           = local.owners

  dynamic_membership {
    enabled = true
    rule    = each.value.rule
  }
}

resource "azuread_app_role_assignment" "access" {
  for_each            = var.groups
  app_role_id         = each.value.role == "" ? local.default_access : local.role_ids[each.value.role]
  principal_object_id = azuread_group.access[each.key].object_id
  resource_object_id  = azuread_service_principal.app.object_id
}

# Application permissions granted to daemons: each grant assigns one of the
# app roles (with "Application" among its member types) to a daemon's
# service principal, which then gets the role in its client-credentials
# tokens for this API (the admin consent of the portal).
resource "azuread_app_role_assignment" "daemon" {
  for_each            = var.app_role_grants
  app_role_id         = local.role_ids[each.value.role]
  principal_object_id = each.value.service_principal_object_id
  resource_object_id  = azuread_service_principal.app.object_id
}
