output "auth_url" {
  description = "Base URL of the auth functions (both regions)."
  value       = module.auth_primary.auth_url
}

output "mesh_url" {
  description = "URL connectors enrol at (connectord enroll --mesh)."
  value       = "https://${local.mesh_host}"
}

output "app_url" {
  description = "URL users open."
  value       = "https://${var.app_host}/"
}

output "entra_client_id" {
  description = "Client id of the app registration."
  value       = module.entra_app.client_id
}

output "support_group_id" {
  description = "Object id of the SmartMoney-Support group (use it in catalogue policies)."
  value       = module.entra_app.group_object_ids["SmartMoney-Support"]
}

output "load_balancers" {
  description = "Network Load Balancer DNS names by region."
  value = {
    (var.primary_region)   = module.mesh_primary.load_balancer_dns_name
    (var.secondary_region) = module.mesh_secondary.load_balancer_dns_name
  }
}
