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

resource "google_secret_manager_secret_version" "samples_token_sha256" {
  count = local.samples_token_in_secret ? 1 : 0

  secret      = google_secret_manager_secret.samples_token_sha256[0].id
  secret_data = var.samples_token_sha256
}

resource "google_secret_manager_secret_iam_member" "samples_token_sha256" {
  count = local.samples_token_in_secret ? 1 : 0

  secret_id = google_secret_manager_secret.samples_token_sha256[0].id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.sa["samples"].member
}
