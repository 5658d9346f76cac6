# The endpoint the pipeline deploys approved models to (deployment is the
# pipeline's job, not Terraform's).
resource "google_vertex_ai_endpoint" "main" {
  #checkov:skip=CKV2_GCP_24:Serves a model trained on public water-quality data; Google-managed encryption, no customer key ring is provisioned.
  #checkov:skip=CKV2_GCP_33:Called by the predict function over Google's API with IAM (aiplatform.user on its own SA only); a PSC-only endpoint would add a forwarding rule for no access-control gain.
  name         = "${var.name_prefix}-endpoint"
  display_name = "${var.name_prefix}-endpoint"
  description  = "Water potability model endpoint"
  location     = var.region
  region       = var.region

  depends_on = [google_project_service.apis]
}
