output "auth_url" {
  description = "External base URL of the auth service; register <auth_url>/callback as the app registration's redirect URI and pass it to the mesh nodes."
  value       = "https://${var.domain_name}"
}

output "function_name" {
  description = "Name of the Lambda function in this region."
  value       = aws_lambda_function.auth.function_name
}

output "function_arn" {
  description = "ARN of the Lambda function in this region."
  value       = aws_lambda_function.auth.arn
}

output "role_arn" {
  description = "ARN of the function's execution role."
  value       = aws_iam_role.function.arn
}

output "log_group_name" {
  description = "CloudWatch log group of the function."
  value       = aws_cloudwatch_log_group.function.name
}

output "secret_arns" {
  description = "ARNs of this region's secrets (session keys, state key and, if set, the client secret)."
  value       = local.secret_arns
}

output "regional_domain" {
  description = "Regional API Gateway domain that this region's latency record points at (for health checks)."
  value       = aws_apigatewayv2_domain_name.auth.domain_name_configuration[0].target_domain_name
}
