# Operators (issue 22, docs/operating-the-model.md): `potability model rollback|hold|release|
# approve|reject` runs on an operator's machine with their own gcloud credentials (application
# default credentials), reaching Cloud SQL through the connector as themselves (IAM database
# authentication of the group) and the Vertex AI endpoint directly. The group var.operators
# is granted exactly what the command uses, nothing when it is empty:
#   - Cloud SQL: connect (cloudsql.client) and log in as an IAM user (cloudsql.instanceUser),
#     the group a database user whose role water_operators (sql/012) may read the run record
#     and write model changes and alerts - nothing else;
#   - Vertex AI: a custom role with the permissions of deploy / predict / undeploy on the
#     endpoint and of finding or uploading the model version
#     (cloud.google.com/vertex-ai/docs/general/iam-permissions: deployModel needs
#     aiplatform.endpoints.deploy on the endpoint and aiplatform.models.deploy on the model;
#     the long-running operations are read with the resources' get permissions);
#   - Cloud Logging: the command's alert lines (its machine's output never reaches Cloud
#     Logging), matched by the alert policies of monitoring.tf;
#   - MLflow: moving the champion alias as MLflow's "pipelines" user (its password secret)
#     and reading model artifacts from the MLflow bucket (a version never uploaded to Vertex).
locals {
  operators_member = "group:${var.operators}"
  operators_project_roles = var.operators == "" ? [] : [
    "custom:model_operator", "roles/cloudsql.client", "roles/cloudsql.instanceUser",
    "roles/logging.logWriter",
  ]
  operators_permissions = [
    "aiplatform.endpoints.deploy",
    "aiplatform.endpoints.get",
    "aiplatform.endpoints.predict",
    "aiplatform.endpoints.undeploy",
    "aiplatform.models.deploy",
    "aiplatform.models.get",
    "aiplatform.models.list",
    "aiplatform.models.undeploy",
    "aiplatform.models.upload",
  ]
}

resource "google_project_iam_custom_role" "model_operator" {
  count = var.operators == "" ? 0 : 1

  role_id     = "${replace(var.name_prefix, "-", "_")}_model_operator"
  title       = "potability: model operators"
  description = "Serve another model version on the endpoint (potability model rollback/approve)."
  permissions = local.operators_permissions
  stage       = "GA"

  depends_on = [google_project_service.apis] # the IAM API (iam.tf, custom roles)
}

resource "google_project_iam_member" "operators" {
  for_each = toset(local.operators_project_roles)

  project = var.project_id
  role    = each.value == "custom:model_operator" ? google_project_iam_custom_role.model_operator[0].name : each.value
  member  = local.operators_member
}

resource "google_sql_user" "operators" {
  count = var.operators == "" ? 0 : 1

  name            = var.operators
  instance        = google_sql_database_instance.main.name
  type            = "CLOUD_IAM_GROUP"
  deletion_policy = "ABANDON"
}

resource "google_secret_manager_secret_iam_member" "operators_mlflow" {
  count = var.operators == "" ? 0 : 1

  secret_id = google_secret_manager_secret.mlflow["pipelines"].id
  role      = "roles/secretmanager.secretAccessor"
  member    = local.operators_member
}

resource "google_storage_bucket_iam_member" "operators_mlflow" {
  count = var.operators == "" ? 0 : 1

  bucket = google_storage_bucket.buckets["mlflow"].name
  role   = "roles/storage.objectViewer"
  member = local.operators_member
}
