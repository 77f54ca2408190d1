# tflint settings for every module and example (run by infra/infratest):
# only the bundled Terraform language rules, all of them, so nothing is
# downloaded.
plugin "terraform" {
  enabled = true
  preset  = "all"
}
