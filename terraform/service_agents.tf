# Vertex AI's service agent, service-PROJECT_NUMBER@gcp-sa-aiplatform.iam.gserviceaccount.com,
# attaches each pipeline task's Private Service Connect interface to our network attachment
# (network.tf) from Google's tenant project. Without these permissions every pipeline task fails
# before our code runs. Google's PSC-interface setup for Vertex AI (vertex-ai/docs/general/
# vpc-psc-i-setup) names compute.networkAttachments.get and .update and
# compute.regionOperations.get, or roles/compute.networkAdmin; a custom role holds exactly the
# three. Project-wide: the GA provider 8.7 has no IAM resource on a network attachment.
#
# The agent is created lazily by Google, so it may not exist at the first apply; the GA
# provider has no google_project_service_identity (google-beta only, Google's sample
# iam/docs/samples/iam-create-project-level-service-agent). `make gcp-deploy` therefore ensures
# it (`gcloud beta services identity create --service=aiplatform.googleapis.com`,
# potability/gcp/deploy.py) before the apply that pins the image - the apply that creates this
# grant (it exists once var.image_digest is set, like the migration job: no pipeline can run
# before that apply publishes one). terraform/tests/service_agents.tftest.hcl asserts it.
locals {
  vertex_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-aiplatform.iam.gserviceaccount.com"
}

resource "google_project_iam_custom_role" "vertex_psc_interface" {
  role_id     = "${replace(var.name_prefix, "-", "_")}_vertex_psc_interface"
  title       = "potability: Vertex AI PSC interface"
  description = "Vertex AI's service agent attaches pipeline tasks to the network attachment."
  permissions = ["compute.networkAttachments.get", "compute.networkAttachments.update", "compute.regionOperations.get"]
  stage       = "GA"
  depends_on  = [google_project_service.apis] # the IAM API (iam.tf, custom roles)
}

resource "google_project_iam_member" "vertex_psc_interface" {
  count = var.image_digest != "" ? 1 : 0

  project = var.project_id
  role    = google_project_iam_custom_role.vertex_psc_interface.name
  member  = local.vertex_service_agent
}
