# The auth functions in one AWS region: the Lambda function behind an API
# Gateway HTTP API on a custom domain (ACM certificate, DNS-validated), its
# secrets, a least-privilege role, its log group, and this region's Route 53
# latency record. Instantiate once per region with that region's provider.

data "aws_region" "current" {}

locals {
  region   = data.aws_region.current.region
  fullname = "${var.name}-${local.region}"
  secret_arns = compact([
    aws_secretsmanager_secret.session_keys.arn,
    aws_secretsmanager_secret.state_key.arn,
    try(aws_secretsmanager_secret.client_secret[0].arn, ""),
  ])
  environment = merge({
    POSTERN_AUTH_URL                  = "https://${var.domain_name}"
    POSTERN_MESH_AUTHORITY_PUBLIC_KEY = var.mesh_authority_public_key
    POSTERN_SESSION_KEYS              = "secretsmanager:${aws_secretsmanager_secret.session_keys.arn}"
    POSTERN_STATE_KEY                 = "secretsmanager:${aws_secretsmanager_secret.state_key.arn}"
    POSTERN_OIDC_MODE                 = "entra"
    POSTERN_ENTRA_TENANT_ID           = var.entra_tenant_id
    POSTERN_OIDC_CLIENT_ID            = var.oidc_client_id
    }, var.oidc_client_secret == null ? {} : {
    POSTERN_OIDC_CLIENT_SECRET = "secretsmanager:${aws_secretsmanager_secret.client_secret[0].arn}"
  }, var.extra_environment)
}

# Secrets: this region's copies, readable only by this function's role.

resource "aws_secretsmanager_secret" "session_keys" {
  name                    = "${var.name}/session-keys"
  description             = "Postern auth functions: Ed25519 session key set (POSTERN_SESSION_KEYS)."
  recovery_window_in_days = var.secret_recovery_window_days
  tags                    = var.tags
}

resource "aws_secretsmanager_secret_version" "session_keys" {
  secret_id     = aws_secretsmanager_secret.session_keys.id
  secret_string = var.session_keys_json
}

resource "aws_secretsmanager_secret" "state_key" {
  name                    = "${var.name}/state-key"
  description             = "Postern auth functions: sign-in flow cookie key (POSTERN_STATE_KEY)."
  recovery_window_in_days = var.secret_recovery_window_days
  tags                    = var.tags
}

resource "aws_secretsmanager_secret_version" "state_key" {
  secret_id     = aws_secretsmanager_secret.state_key.id
  secret_string = var.state_key_b64
}

resource "aws_secretsmanager_secret" "client_secret" {
  count                   = var.oidc_client_secret == null ? 0 : 1
  name                    = "${var.name}/oidc-client-secret"
  description             = "Postern auth functions: Entra app registration client secret (POSTERN_OIDC_CLIENT_SECRET)."
  recovery_window_in_days = var.secret_recovery_window_days
  tags                    = var.tags
}

resource "aws_secretsmanager_secret_version" "client_secret" {
  count         = var.oidc_client_secret == null ? 0 : 1
  secret_id     = aws_secretsmanager_secret.client_secret[0].id
  secret_string = var.oidc_client_secret
}

# Role: write its own log group, read its own secrets; nothing else.

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "function" {
  statement {
    sid       = "OwnLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function.arn}:*"]
  }
  statement {
    sid       = "OwnSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = local.secret_arns
  }
}

resource "aws_iam_role" "function" {
  name               = local.fullname
  description        = "Postern auth function in ${local.region}."
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "function" {
  name   = "postern-auth"
  role   = aws_iam_role.function.id
  policy = data.aws_iam_policy_document.function.json
}

resource "aws_cloudwatch_log_group" "function" {
  name              = "/aws/lambda/${var.name}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_lambda_function" "auth" {
  function_name    = var.name
  description      = "Postern auth functions (sign-in, handoff, logout, JWKS)."
  role             = aws_iam_role.function.arn
  filename         = var.lambda_zip_path
  source_code_hash = filebase64sha256(var.lambda_zip_path)
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = ["arm64"]
  memory_size      = var.memory_size
  timeout          = var.timeout_seconds

  environment {
    variables = local.environment
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.function.name
  }

  tags = var.tags

  depends_on = [aws_iam_role_policy.function]
}

# HTTP API (payload v2) on the custom domain; the default execute-api
# endpoint is off so the function is reachable only through the domain.

resource "aws_apigatewayv2_api" "auth" {
  name                         = local.fullname
  description                  = "Postern auth functions."
  protocol_type                = "HTTP"
  disable_execute_api_endpoint = true
  tags                         = var.tags
}

resource "aws_apigatewayv2_integration" "auth" {
  api_id                 = aws_apigatewayv2_api.auth.id
  integration_type       = "AWS_PROXY"
  integration_uri        = aws_lambda_function.auth.invoke_arn
  payload_format_version = "2.0"
}

resource "aws_apigatewayv2_route" "default" {
  api_id    = aws_apigatewayv2_api.auth.id
  route_key = "$default"
  target    = "integrations/${aws_apigatewayv2_integration.auth.id}"
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.auth.id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    throttling_rate_limit  = var.throttle_rate_limit
    throttling_burst_limit = var.throttle_burst_limit
  }

  tags = var.tags
}

resource "aws_lambda_permission" "apigateway" {
  statement_id  = "AllowHTTPAPI"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.auth.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.auth.execution_arn}/*/*"
}

resource "aws_acm_certificate" "auth" {
  domain_name       = var.domain_name
  validation_method = "DNS"
  tags              = var.tags

  lifecycle {
    create_before_destroy = true
  }
}

# Every region's certificate for the same name asks for the same record.
resource "aws_route53_record" "validation" {
  for_each = {
    for o in aws_acm_certificate.auth.domain_validation_options : o.domain_name => o
  }
  zone_id         = var.route53_zone_id
  name            = each.value.resource_record_name
  type            = each.value.resource_record_type
  records         = [each.value.resource_record_value]
  ttl             = 300
  allow_overwrite = true
}

resource "aws_acm_certificate_validation" "auth" {
  certificate_arn         = aws_acm_certificate.auth.arn
  validation_record_fqdns = [for r in aws_route53_record.validation : r.fqdn]
}

resource "aws_apigatewayv2_domain_name" "auth" {
  domain_name = var.domain_name

  domain_name_configuration {
    certificate_arn = aws_acm_certificate_validation.auth.certificate_arn
    endpoint_type   = "REGIONAL"
    security_policy = "TLS_1_2"
  }

  tags = var.tags
}

resource "aws_apigatewayv2_api_mapping" "auth" {
  api_id      = aws_apigatewayv2_api.auth.id
  domain_name = aws_apigatewayv2_domain_name.auth.id
  stage       = aws_apigatewayv2_stage.default.id
}

resource "aws_route53_record" "latency" {
  zone_id        = var.route53_zone_id
  name           = var.domain_name
  type           = "A"
  set_identifier = local.fullname

  latency_routing_policy {
    region = local.region
  }

  alias {
    name                   = aws_apigatewayv2_domain_name.auth.domain_name_configuration[0].target_domain_name
    zone_id                = aws_apigatewayv2_domain_name.auth.domain_name_configuration[0].hosted_zone_id
    evaluate_target_health = true
  }
}
