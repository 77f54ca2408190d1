output "load_balancer_dns_name" {
  description = "DNS name of this region's Network Load Balancer (the latency records point at it)."
  value       = aws_lb.mesh.dns_name
}

output "security_group_id" {
  description = "Security group of the mesh nodes."
  value       = aws_security_group.node.id
}

output "autoscaling_group_name" {
  description = "Auto Scaling group of the mesh nodes (start an instance refresh here to roll them)."
  value       = aws_autoscaling_group.mesh.name
}

output "node_role_arn" {
  description = "ARN of the mesh nodes' IAM role."
  value       = aws_iam_role.node.arn
}

output "secret_arns" {
  description = "ARNs of this region's node secrets, by name (authority-key, tls-cert, tls-key, gossip-keyring)."
  value       = { for k, s in aws_secretsmanager_secret.node : k => s.arn }
}
