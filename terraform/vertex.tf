# The endpoint the pipeline deploys approved models to (deployment is the
# pipeline's job, not Terraform's).
resource "google_vertex_ai_endpoint" "main" {
  #checkov:skip=CKV_GCP_96:Google-managed encryption; no CMEK key ring is provisioned for this project.
  name         = "${var.name_prefix}-endpoint"
  display_name = "${var.name_prefix}-endpoint"
  description  = "Water potability model endpoint"
  location     = var.region
  region       = var.region

  depends_on = [google_project_service.apis]
}
