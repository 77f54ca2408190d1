# One region of the mesh: an Auto Scaling group of meshd nodes (Amazon
# Linux 2023, arm64) behind a Network Load Balancer that passes TCP 443
# through (meshd terminates TLS and sees the client address), a public IP
# per node for WireGuard/UDP, the node secrets in this region's Secrets
# Manager, and this region's Route 53 latency records for the mesh and app
# hosts. Instantiate once per region with that region's provider.

data "aws_region" "current" {}

data "aws_ssm_parameter" "ami" {
  name = var.ami_ssm_parameter
}

locals {
  region   = data.aws_region.current.region
  fullname = "${var.name}-${local.region}"
  secrets = {
    authority-key  = var.authority_key
    tls-cert       = var.tls_cert_pem
    tls-key        = var.tls_key_pem
    gossip-keyring = var.gossip_keyring
  }
  # Whether the nodes gossip: only the emptiness of the keyring is revealed.
  gossip_enabled = nonsensitive(var.gossip_keyring != "")
  tls_files      = var.tls_cert_pem != ""
  secret_names   = concat(["authority-key"], local.tls_files ? ["tls-cert", "tls-key"] : [], local.gossip_enabled ? ["gossip-keyring"] : [])
  discover_spec  = length(var.discovery_regions) == 0 ? "" : "provider=aws regions=${join(",", var.discovery_regions)} tag_key=postern-cluster tag_value=${var.cluster_name} addr_type=public_v4 port=${var.gossip_port}"
  # Checked by a precondition rather than a variable validation, which
  # would print the rejected keyring: the lines of gossip_keyring that are
  # neither blank, a # comment nor a base64 16-, 24- or 32-byte key, and
  # the number of keys.
  gossip_key_pattern  = "^(?:[A-Za-z0-9+/]{22}==|[A-Za-z0-9+/]{32}|[A-Za-z0-9+/]{43}=)$"
  gossip_keyring_bad  = length([for l in split("\n", var.gossip_keyring) : l if trimspace(l) != "" && substr(trimspace(l), 0, 1) != "#" && !can(regex(local.gossip_key_pattern, trimspace(l)))])
  gossip_keyring_keys = length([for l in split("\n", var.gossip_keyring) : l if can(regex(local.gossip_key_pattern, trimspace(l)))])
  user_data = templatefile("${path.module}/user_data.sh.tftpl", {
    package_url        = var.meshd_package_url
    package_sha256     = var.meshd_package_sha256
    aws_region         = local.region
    authority_key_arn  = aws_secretsmanager_secret.node["authority-key"].arn
    tls_cert_arn       = try(aws_secretsmanager_secret.node["tls-cert"].arn, "")
    tls_key_arn        = try(aws_secretsmanager_secret.node["tls-key"].arn, "")
    tls_files          = local.tls_files
    acme_directory_url = var.acme_directory_url
    acme_email         = var.acme_email
    catalog_uri        = var.catalog_s3_uri
    catalog_region     = var.catalog_s3_region
    auth_url           = var.auth_url
    discover_spec      = local.discover_spec
    region_label       = var.region_label
    wireguard_port     = var.wireguard_port
    extra_args         = join(" ", var.meshd_extra_args)
    gossip_keyring_arn = try(aws_secretsmanager_secret.node["gossip-keyring"].arn, "")
    gossip_enabled     = local.gossip_enabled
    gossip_port        = var.gossip_port
    gossip_seeds       = join(",", var.gossip_seeds)
    public_url         = var.public_url
  })
}

resource "aws_secretsmanager_secret" "node" {
  for_each                = toset(local.secret_names)
  name                    = "${var.name}/${each.key}"
  description             = "Postern mesh node secret: ${each.key}."
  recovery_window_in_days = 7
  tags                    = var.tags
}

resource "aws_secretsmanager_secret_version" "node" {
  for_each      = aws_secretsmanager_secret.node
  secret_id     = each.value.id
  secret_string = local.secrets[each.key]

  lifecycle {
    precondition {
      condition     = each.key != "gossip-keyring" || (local.gossip_keyring_bad == 0 && local.gossip_keyring_keys > 0)
      error_message = "The gossip_keyring must hold base64 keys of 16, 24 or 32 bytes, one per line (blank lines and # comments allowed), as `meshd gossip keygen` writes it; the value is not shown."
    }
    precondition {
      condition     = local.tls_files || var.acme_directory_url != ""
      error_message = "Set tls_cert_pem and tls_key_pem, or acme_directory_url."
    }
  }
}

# Security group: HTTPS and WireGuard in, gossip only from the mesh nodes
# (gossip_peer_cidrs: nodes advertise their public addresses, so this
# region's own nodes must be in it too); no SSH (use Systems Manager Session Manager).

resource "aws_security_group" "node" {
  name        = local.fullname
  description = "Postern mesh nodes: HTTPS and WireGuard in."
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "https" {
  for_each          = toset(var.https_ingress_cidrs)
  security_group_id = aws_security_group.node.id
  description       = "HTTPS: users, enrolment and attach"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "wireguard" {
  for_each          = toset(var.wireguard_ingress_cidrs)
  security_group_id = aws_security_group.node.id
  description       = "WireGuard from connectors"
  ip_protocol       = "udp"
  from_port         = var.wireguard_port
  to_port           = var.wireguard_port
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "gossip" {
  for_each = {
    for pair in setproduct(var.gossip_peer_cidrs, ["tcp", "udp"]) : "${pair[0]}/${pair[1]}" => pair
  }
  security_group_id = aws_security_group.node.id
  description       = "Gossip from mesh nodes (public addresses)"
  ip_protocol       = each.value[1]
  from_port         = var.gossip_port
  to_port           = var.gossip_port
  cidr_ipv4         = each.value[0]
}

resource "aws_vpc_security_group_ingress_rule" "gossip_self" {
  for_each                     = toset(["tcp", "udp"])
  security_group_id            = aws_security_group.node.id
  description                  = "Gossip between this region's nodes over private addresses"
  ip_protocol                  = each.value
  from_port                    = var.gossip_port
  to_port                      = var.gossip_port
  referenced_security_group_id = aws_security_group.node.id
}

resource "aws_vpc_security_group_egress_rule" "all" {
  security_group_id = aws_security_group.node.id
  description       = "Outbound: packages, AWS APIs, WireGuard replies, auth JWKS"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

# Node role: read its own secrets; Session Manager for shell access.

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "node" {
  statement {
    sid       = "OwnSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [for s in aws_secretsmanager_secret.node : s.arn]
  }
  statement {
    sid       = "Catalogue"
    actions   = ["s3:GetObject"]
    resources = ["arn:aws:s3:::${trimprefix(var.catalog_s3_uri, "s3://")}"]
  }
  dynamic "statement" {
    for_each = local.discover_spec == "" ? [] : [1]
    content {
      sid = "FindMeshNodes"
      # DescribeInstances takes no resource or tag condition.
      actions   = ["ec2:DescribeInstances"]
      resources = ["*"]
    }
  }
}

resource "aws_iam_role" "node" {
  name               = local.fullname
  description        = "Postern mesh node in ${local.region}."
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "node" {
  name   = "postern-meshd"
  role   = aws_iam_role.node.id
  policy = data.aws_iam_policy_document.node.json
}

resource "aws_iam_role_policy_attachment" "ssm" {
  role       = aws_iam_role.node.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "node" {
  name = local.fullname
  role = aws_iam_role.node.name
  tags = var.tags
}

resource "aws_launch_template" "node" {
  name_prefix   = "${local.fullname}-"
  description   = "Postern mesh node"
  image_id      = data.aws_ssm_parameter.ami.value
  instance_type = var.instance_type
  user_data     = base64encode(local.user_data)

  iam_instance_profile {
    arn = aws_iam_instance_profile.node.arn
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  network_interfaces {
    associate_public_ip_address = true
    security_groups             = [aws_security_group.node.id]
  }

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size = 8
      volume_type = "gp3"
      encrypted   = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { Name = local.fullname, postern-cluster = var.cluster_name })
  }

  tags = var.tags
}

resource "aws_lb" "mesh" {
  name                             = substr(local.fullname, 0, 32)
  load_balancer_type               = "network"
  internal                         = false
  subnets                          = var.subnet_ids
  enable_cross_zone_load_balancing = true
  tags                             = var.tags
}

resource "aws_lb_target_group" "https" {
  name_prefix        = "pmesh-"
  port               = 443
  protocol           = "TCP"
  vpc_id             = var.vpc_id
  preserve_client_ip = "true"

  health_check {
    protocol = "TCP"
    port     = "443"
  }

  tags = var.tags
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.mesh.arn
  port              = 443
  protocol          = "TCP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.https.arn
  }
}

resource "aws_autoscaling_group" "mesh" {
  name                      = local.fullname
  vpc_zone_identifier       = var.subnet_ids
  min_size                  = var.desired_nodes
  desired_capacity          = var.desired_nodes
  max_size                  = var.max_nodes
  target_group_arns         = [aws_lb_target_group.https.arn]
  health_check_type         = "ELB"
  health_check_grace_period = 180

  launch_template {
    id      = aws_launch_template.node.id
    version = aws_launch_template.node.latest_version
  }

  instance_refresh {
    strategy = "Rolling"
    preferences {
      min_healthy_percentage = 50
    }
  }

  dynamic "tag" {
    for_each = merge(var.tags, { Name = local.fullname, postern-cluster = var.cluster_name })
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }
}

resource "aws_route53_record" "latency" {
  for_each       = toset(var.hostnames)
  zone_id        = var.route53_zone_id
  name           = each.value
  type           = "A"
  set_identifier = local.fullname

  latency_routing_policy {
    region = local.region
  }

  alias {
    name                   = aws_lb.mesh.dns_name
    zone_id                = aws_lb.mesh.zone_id
    evaluate_target_health = true
  }
}
