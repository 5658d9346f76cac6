# Extra bearer tokens accepted by add_sample (sha256 digests only), when set.
# There is no database password anywhere: every database user is an IAM user.
resource "google_secret_manager_secret" "samples_token_sha256" {
  count = local.samples_token_in_secret ? 1 : 0

  secret_id = "${var.name_prefix}-samples-token-sha256"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

# Write-only (Terraform >= 1.11): the digests go to Secret Manager and never into
# the state. secret_data_wo_version must change for a new value to be sent, so it
# is derived from the value (provider docs r/secret_manager_secret_version,
# "secret_data_wo").
resource "google_secret_manager_secret_version" "samples_token_sha256" {
  count = local.samples_token_in_secret ? 1 : 0

  secret                 = google_secret_manager_secret.samples_token_sha256[0].id
  secret_data_wo         = var.samples_token_sha256
  secret_data_wo_version = parseint(substr(sha256(var.samples_token_sha256), 0, 8), 16)
}

resource "google_secret_manager_secret_iam_member" "samples_token_sha256" {
  count = local.samples_token_in_secret ? 1 : 0

  secret_id = google_secret_manager_secret.samples_token_sha256[0].id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.sa["samples"].member
}

# MLflow's basic-auth passwords (mlflow.tf). The VM generates each on its first
# boot and adds it as the first version, so no password passes through Terraform
# or its state: "admin" (engineers, through IAP) and "pipelines" (the pipeline's
# user; MLFLOW_TRACKING_USERNAME=pipelines, MLFLOW_TRACKING_PASSWORD from here).
locals {
  mlflow_secret_grants = merge(
    {
      "admin/mlflow-adder"        = { secret = "admin", member = google_service_account.sa["mlflow"].member, role = "roles/secretmanager.secretVersionAdder" }
      "admin/mlflow-accessor"     = { secret = "admin", member = google_service_account.sa["mlflow"].member, role = "roles/secretmanager.secretAccessor" }
      "pipelines/mlflow-adder"    = { secret = "pipelines", member = google_service_account.sa["mlflow"].member, role = "roles/secretmanager.secretVersionAdder" }
      "pipelines/mlflow-accessor" = { secret = "pipelines", member = google_service_account.sa["mlflow"].member, role = "roles/secretmanager.secretAccessor" }
      "pipelines/pipelines"       = { secret = "pipelines", member = google_service_account.sa["pipelines"].member, role = "roles/secretmanager.secretAccessor" }
    },
    { for e in var.engineers : "admin/${e}" => { secret = "admin", member = e, role = "roles/secretmanager.secretAccessor" } },
  )
}

resource "google_secret_manager_secret" "mlflow" {
  for_each = toset(["admin", "pipelines"])

  secret_id = "${var.name_prefix}-mlflow-${each.key}-password"

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_iam_member" "mlflow" {
  for_each = local.mlflow_secret_grants

  secret_id = google_secret_manager_secret.mlflow[each.value.secret].id
  role      = each.value.role
  member    = each.value.member
}
