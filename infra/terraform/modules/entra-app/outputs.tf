output "tenant_id" {
  description = "Tenant id of the app registration (POSTERN_ENTRA_TENANT_ID)."
  value       = data.azuread_client_config.current.tenant_id
}

output "client_id" {
  description = "Client (application) id of the app registration (POSTERN_OIDC_CLIENT_ID)."
  value       = azuread_application.app.client_id
}

output "client_secret" {
  description = "Client secret for the auth functions (POSTERN_OIDC_CLIENT_SECRET); null with a federated credential."
  value       = try(azuread_application_password.auth[0].value, null)
  sensitive   = true
}

output "service_principal_object_id" {
  description = "Object id of the enterprise application (service principal) users are assigned to."
  value       = azuread_service_principal.app.object_id
}

output "app_role_ids" {
  description = "App role ids by role value."
  value       = local.role_ids
}

output "group_object_ids" {
  description = "Object ids of the dynamic security groups by display name (the ids the groups claim carries)."
  value       = { for name, g in azuread_group.access : name => g.object_id }
}

output "identifier_uris" {
  description = "Application ID URIs of the API (for the catalogue's bearer: entra: audiences, beside client_id)."
  value       = azuread_application.app.identifier_uris
}

output "api_scope_ids" {
  description = "Delegated permission (scope) ids by value."
  value       = local.scope_ids
}
