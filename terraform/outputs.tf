output "project_id" {
  value = var.project_id
}

output "region" {
  value = var.region
}

output "bucket" {
  description = "Main bucket (function source, notebook)."
  value       = google_storage_bucket.buckets["main"].name
}

output "buckets" {
  description = "All buckets by purpose (main, pipeline_root, mlflow)."
  value       = { for k, b in google_storage_bucket.buckets : k => b.name }
}

output "pipeline_template_uri" {
  description = "The published pipeline the schedule runs (`potability pipeline publish`, make gcp-deploy)."
  value       = local.pipeline_template_uri
}

output "pipeline_root" {
  value = local.pipeline_root
}

output "mlflow_artifacts_uri" {
  value = local.mlflow_artifacts_uri
}

output "pipeline_parameters" {
  description = "Runtime parameters of the scheduled run (also for manual runs)."
  value       = local.pipeline_parameters
}

output "pipeline_job_json" {
  description = "The PipelineJob body the schedule POSTs (submit it by hand with curl for an immediate run)."
  value       = jsonencode(local.pipeline_job)
}

output "pipelines_service_account" {
  value = google_service_account.sa["pipelines"].email
}

output "service_accounts" {
  description = "Service-account emails by role."
  value       = { for k, sa in google_service_account.sa : k => sa.email }
}

output "image_repository" {
  description = "Artifact Registry path for the project image."
  value       = local.image_repository
}

output "pipeline_repository" {
  description = "Artifact Registry KFP repository (Vertex AI template registry) `potability pipeline publish` uploads to."
  value       = "https://${var.region}-kfp.pkg.dev/${var.project_id}/${google_artifact_registry_repository.pipelines.repository_id}"
}

output "migration_job" {
  description = "Cloud Run job running `potability migrate` (empty until image_digest is set)."
  value       = local.migrate_job ? google_cloud_run_v2_job.migrate[0].name : ""
}

output "model_job" {
  description = "Cloud Run job running `potability model ...` for the operators (make gcp-model; empty until image_digest and operators are set)."
  value       = local.model_job ? google_cloud_run_v2_job.model[0].name : ""
}

output "smoke_service_account" {
  description = "The smoke test's account (potability/gcp/smoke.py): invoker of predict and add_sample, bound to sensor id smoke-deploy; engineers may mint its ID tokens."
  value       = google_service_account.sa["smoke"].email
}

output "network_attachment" {
  description = "Network attachment of the pipeline jobs' PSC interfaces (PipelineJob.pscInterfaceConfig.networkAttachment)."
  value       = google_compute_network_attachment.pipelines.name
}

output "mlflow_secrets" {
  description = "Secret Manager secrets with MLflow's basic-auth passwords (users admin and pipelines)."
  value       = { for k, s in google_secret_manager_secret.mlflow : k => s.secret_id }
}

output "serving_image" {
  description = "Project image the pipeline deploys and the migration job runs (by digest once image_digest is set)."
  value       = local.serving_image
}

output "endpoint_id" {
  description = "Vertex AI endpoint id."
  value       = google_vertex_ai_endpoint.main.name
}

output "mlflow_internal_address" {
  description = "MLflow tracking URI inside the VPC (engineers: IAP tunnel, see README.md)."
  value       = local.mlflow_tracking_uri
}

output "mlflow_instance" {
  value = { name = google_compute_instance.mlflow.name, zone = google_compute_instance.mlflow.zone }
}

output "cloud_sql_instance" {
  description = "Instance connection name (project:region:instance)."
  value       = google_sql_database_instance.main.connection_name
}

output "cloud_sql_private_ip" {
  value = google_sql_database_instance.main.private_ip_address
}

output "database_name" {
  value = google_sql_database.app.name
}

output "database_users" {
  description = "IAM database users by role."
  value       = local.db_user
}

output "function_urls" {
  description = "HTTPS URLs of the functions."
  value       = { for k, fn in google_cloudfunctions2_function.fn : k => fn.url }
}

output "scheduler_job" {
  value = google_cloud_scheduler_job.training.name
}

# make gcp-deploy: Cloud Build's account and where the build's source is staged (build.tf).
output "image_build_service_account" {
  description = "Service account the image build runs as (gcloud builds submit --service-account)."
  value       = google_service_account.sa["image-build"].id
}

output "build_source_staging_dir" {
  description = "Where gcloud builds submit stages the source (read by the image-build account)."
  value       = "gs://${google_storage_bucket.buckets["main"].name}/cloudbuild/source"
}

# make gcp-destroy: the VPC whose service-networking peering Terraform abandons (network.tf).
output "network" {
  description = "VPC network name."
  value       = google_compute_network.vpc.name
}

# make gcp-deploy waits until Cloud Monitoring knows each of these before the apply that
# creates the alert policies on them (monitoring.tf).
output "alert_metric_types" {
  description = "Metric types of the log-based metrics the alert policies watch."
  value = concat(
    [for m in google_logging_metric.alert : "logging.googleapis.com/user/${m.name}"],
    ["logging.googleapis.com/user/${google_logging_metric.scheduler_failures.name}",
    "logging.googleapis.com/user/${google_logging_metric.pipeline_job_failures.name}"],
  )
}
