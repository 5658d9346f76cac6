# The project image is built by Cloud Build as its own account (iam.tf: image-build), not the
# project's default build account: on projects created since mid-2024 that is the Compute
# Engine default account, often without the roles a build needs (Google: build/docs/
# cloud-build-service-account-updates). `make gcp-deploy` submits cloudbuild.yaml with
# --service-account and stages the source in the main bucket; engineers who run it act as
# the account (roles/iam.serviceAccountUser on it, nothing project-wide).
resource "google_service_account_iam_member" "engineers_act_as_image_build" {
  for_each = toset(var.engineers)

  service_account_id = google_service_account.sa["image-build"].name
  role               = "roles/iam.serviceAccountUser"
  member             = each.value
}
