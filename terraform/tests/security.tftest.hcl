# Security-relevant wiring, checked with mocked providers (no Google account):
# `terraform test` plans and "applies" against mock_provider, so computed values
# are fake but every reference, argument and type is checked against the
# provider schema (tools/terraform_schema/, see README.md).

mock_provider "google" {}
mock_provider "archive" {}

variables {
  project_id              = "test-project"
  region                  = "europe-west1"
  zone                    = "europe-west1-b"
  regulator_group         = "regulator@example.com"
  sensor_service_accounts = ["sensor-a@sensors.iam.gserviceaccount.com", "sensor-b@sensors.iam.gserviceaccount.com"]
  engineers               = ["group:ml-eng@example.com"]
  db_admins               = ["alice@example.com"]
  image_tag               = "v1"
}

# One mocked apply; the runs after it plan against its state, so every value
# they assert on is known (and each provider start costs time).
run "apply" {
  command = apply
}

run "cloud_sql_is_private_encrypted_and_backed_up" {
  command = plan

  assert {
    condition     = google_sql_database_instance.main.settings[0].ip_configuration[0].ipv4_enabled == false
    error_message = "Cloud SQL must have no public IP."
  }
  assert {
    condition     = google_sql_database_instance.main.settings[0].ip_configuration[0].private_network == google_compute_network.vpc.id
    error_message = "Cloud SQL must sit on the project VPC (private IP)."
  }
  assert {
    condition     = google_sql_database_instance.main.settings[0].ip_configuration[0].ssl_mode == "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
    error_message = "Cloud SQL must require connector client certificates (SSL enforced)."
  }
  assert {
    condition     = length(google_sql_database_instance.main.settings[0].ip_configuration[0].authorized_networks) == 0
    error_message = "No authorized networks."
  }
  assert {
    condition = (
      google_sql_database_instance.main.settings[0].backup_configuration[0].enabled &&
      google_sql_database_instance.main.settings[0].backup_configuration[0].point_in_time_recovery_enabled
    )
    error_message = "Backups and point-in-time recovery must be on."
  }
  assert {
    condition     = google_sql_database_instance.main.deletion_protection && google_sql_database_instance.main.settings[0].deletion_protection_enabled
    error_message = "Deletion protection must be on by default."
  }
  assert {
    condition     = contains([for f in google_sql_database_instance.main.settings[0].database_flags : "${f.name}=${f.value}"], "cloudsql.iam_authentication=on")
    error_message = "IAM database authentication must be enabled."
  }
  assert {
    condition     = alltrue([for u in google_sql_user.sa : u.type == "CLOUD_IAM_SERVICE_ACCOUNT" && u.password == null])
    error_message = "Service accounts are IAM database users without passwords."
  }
  assert {
    condition     = google_sql_user.sa["predict"].name == trimsuffix(google_service_account.sa["predict"].email, ".gserviceaccount.com")
    error_message = "IAM database user name is the SA email without .gserviceaccount.com."
  }
  assert {
    condition     = google_sql_database.app.name == "potability"
    error_message = "App database is named after var.db_name."
  }
}

run "mlflow_vm_is_private_and_shielded" {
  command = plan

  assert {
    condition     = length(google_compute_instance.mlflow.network_interface[0].access_config) == 0
    error_message = "The MLflow VM must have no public IP."
  }
  assert {
    condition = (
      google_compute_instance.mlflow.shielded_instance_config[0].enable_secure_boot &&
      google_compute_instance.mlflow.shielded_instance_config[0].enable_vtpm &&
      google_compute_instance.mlflow.shielded_instance_config[0].enable_integrity_monitoring
    )
    error_message = "The MLflow VM must be a shielded VM."
  }
  assert {
    condition     = google_compute_instance.mlflow.service_account[0].email == google_service_account.sa["mlflow"].email
    error_message = "The MLflow VM runs as its own service account."
  }
  assert {
    condition     = strcontains(google_compute_instance.mlflow.metadata["startup-script"], "--auto-iam-authn") && strcontains(google_compute_instance.mlflow.metadata["startup-script"], "gs://test-project-potability/mlflow-artifacts")
    error_message = "MLflow must use the Auth Proxy with IAM auth and the bucket as artifact store."
  }
  assert {
    condition     = google_compute_firewall.iap_to_mlflow.source_ranges == toset(["35.235.240.0/20"])
    error_message = "Engineers reach the VM through IAP TCP forwarding only."
  }
  assert {
    condition     = alltrue([for r in google_compute_firewall.internal_to_mlflow.source_ranges : !contains(["0.0.0.0/0"], r)])
    error_message = "MLflow must not be open to the internet."
  }
  assert {
    condition     = [for m in google_iap_tunnel_instance_iam_member.engineers : m.member] == ["group:ml-eng@example.com"]
    error_message = "Only var.engineers may open IAP tunnels."
  }
}

run "function_invokers" {
  command = plan

  assert {
    condition     = alltrue([for m in google_cloud_run_service_iam_member.invoker : m.role == "roles/run.invoker"])
    error_message = "Invokers get roles/run.invoker on the function's Cloud Run service."
  }
  assert {
    condition = toset([for k, m in google_cloud_run_service_iam_member.invoker : m.member if m.service == google_cloudfunctions2_function.fn["predict"].name]) == toset([
      "serviceAccount:sensor-a@sensors.iam.gserviceaccount.com",
      "serviceAccount:sensor-b@sensors.iam.gserviceaccount.com",
    ])
    error_message = "Only the sensors' service accounts may invoke predict."
  }
  assert {
    condition     = [for k, m in google_cloud_run_service_iam_member.invoker : m.member if m.service == google_cloudfunctions2_function.fn["samples"].name] == ["group:regulator@example.com"]
    error_message = "Only the regulator group may invoke add_sample."
  }
  assert {
    condition     = [for k, m in google_cloud_run_service_iam_member.invoker : m.service if m.member == "allUsers"] == [google_cloudfunctions2_function.fn["status"].name]
    error_message = "allUsers may invoke the status function and nothing else."
  }
  assert {
    condition     = [for k, f in google_cloudfunctions2_function.fn : f.build_config[0].entry_point] == ["predict", "add_sample", "status"]
    error_message = "Entry points are predict, add_sample, status."
  }
}

run "function_configuration_flows_from_terraform" {
  command = plan

  assert {
    condition = alltrue([for k, f in google_cloudfunctions2_function.fn :
      f.service_config[0].service_account_email == google_service_account.sa[k].email &&
      f.service_config[0].environment_variables["POTABILITY_ENV"] == "gcp" &&
      f.service_config[0].environment_variables["DB_IAM_AUTH"] == "true" &&
      f.service_config[0].environment_variables["DB_NAME"] == "potability" &&
      f.service_config[0].environment_variables["CLOUD_SQL_INSTANCE"] == google_sql_database_instance.main.connection_name &&
      f.service_config[0].environment_variables["DB_USER"] == trimsuffix(google_service_account.sa[k].email, ".gserviceaccount.com")
    ])
    error_message = "Each function runs as its own SA and connects to Cloud SQL as that SA's IAM user."
  }
  assert {
    condition = (
      google_cloudfunctions2_function.fn["predict"].service_config[0].environment_variables["ENDPOINT_MODE"] == "vertex" &&
      google_cloudfunctions2_function.fn["predict"].service_config[0].environment_variables["VERTEX_ENDPOINT_ID"] == google_vertex_ai_endpoint.main.name &&
      google_cloudfunctions2_function.fn["predict"].service_config[0].environment_variables["GOOGLE_CLOUD_PROJECT"] == "test-project" &&
      google_cloudfunctions2_function.fn["predict"].service_config[0].environment_variables["GOOGLE_CLOUD_REGION"] == "europe-west1"
    )
    error_message = "predict calls the Terraform-managed Vertex AI endpoint."
  }
  assert {
    condition = (
      google_cloudfunctions2_function.fn["samples"].service_config[0].environment_variables["SAMPLES_TRUST_PLATFORM_IDENTITY"] == "true" &&
      google_cloudfunctions2_function.fn["samples"].service_config[0].environment_variables["SAMPLES_TOKEN_SHA256"] == "" &&
      length(google_cloudfunctions2_function.fn["samples"].service_config[0].secret_environment_variables) == 0
    )
    error_message = "add_sample trusts the platform identity; no extra tokens by default."
  }
  assert {
    condition     = !contains(keys(google_cloudfunctions2_function.fn["status"].service_config[0].environment_variables), "ENDPOINT_MODE")
    error_message = "status only gets the database settings."
  }
  assert {
    condition     = alltrue([for f in google_cloudfunctions2_function.fn : f.build_config[0].source[0].storage_source[0].object == google_storage_bucket_object.function_source.name])
    error_message = "All functions build from the zipped repository source."
  }
}

run "schedule_submits_the_compiled_pipeline_as_the_pipelines_sa" {
  command = plan

  assert {
    condition     = google_cloud_scheduler_job.training.http_target[0].uri == "https://europe-west1-aiplatform.googleapis.com/v1/projects/test-project/locations/europe-west1/pipelineJobs"
    error_message = "The schedule POSTs to the Vertex AI pipelineJobs API."
  }
  assert {
    condition     = google_cloud_scheduler_job.training.http_target[0].oauth_token[0].service_account_email == google_service_account.sa["scheduler"].email
    error_message = "The schedule authenticates as the scheduler SA."
  }
  assert {
    condition     = jsondecode(base64decode(google_cloud_scheduler_job.training.http_target[0].body)).templateUri == "https://europe-west1-kfp.pkg.dev/test-project/potability-pipelines/water-potability-training/latest"
    error_message = "templateUri is the published pipeline in the KFP repository (Vertex refuses gs:// templates)."
  }
  assert {
    condition     = jsondecode(base64decode(google_cloud_scheduler_job.training.http_target[0].body)).serviceAccount == google_service_account.sa["pipelines"].email
    error_message = "The pipeline runs as the pipelines SA."
  }
  assert {
    condition     = jsondecode(base64decode(google_cloud_scheduler_job.training.http_target[0].body)).runtimeConfig.gcsOutputDirectory == "gs://test-project-potability/pipeline-root"
    error_message = "Pipeline root is gs://<bucket>/pipeline-root."
  }
  assert {
    condition = toset(keys(jsondecode(base64decode(google_cloud_scheduler_job.training.http_target[0].body)).runtimeConfig.parameterValues)) == toset([
      "recall_floor", "test_fraction", "split_seed", "cv_folds", "grids", "model_name", "mlflow_tracking_uri",
      "database_url", "cloud_sql_instance", "database_name", "database_user", "deploy_target", "project", "region",
      "endpoint_id", "serving_image",
    ])
    error_message = "parameterValues carries exactly the pipeline's parameter names."
  }
  assert {
    condition = (
      jsondecode(base64decode(google_cloud_scheduler_job.training.http_target[0].body)).runtimeConfig.parameterValues.serving_image == "europe-west1-docker.pkg.dev/test-project/potability/potability:v1" &&
      jsondecode(base64decode(google_cloud_scheduler_job.training.http_target[0].body)).runtimeConfig.parameterValues.endpoint_id == google_vertex_ai_endpoint.main.name &&
      jsondecode(base64decode(google_cloud_scheduler_job.training.http_target[0].body)).runtimeConfig.parameterValues.database_user == trimsuffix(google_service_account.sa["pipelines"].email, ".gserviceaccount.com") &&
      jsondecode(base64decode(google_cloud_scheduler_job.training.http_target[0].body)).runtimeConfig.parameterValues.mlflow_tracking_uri == "http://${google_compute_instance.mlflow.network_interface[0].network_ip}:5000" &&
      jsondecode(base64decode(google_cloud_scheduler_job.training.http_target[0].body)).runtimeConfig.parameterValues.recall_floor == 0.2
    )
    error_message = "Pipeline parameters come from Terraform-managed resources."
  }
}

run "least_privilege_iam" {
  command = plan

  assert {
    condition     = alltrue([for b in google_project_iam_member.sa : !contains(["roles/owner", "roles/editor", "roles/viewer"], b.role)])
    error_message = "No basic roles."
  }
  assert {
    condition     = alltrue([for b in google_service_account_iam_member.pipelines_act_as : b.service_account_id == google_service_account.sa["pipelines"].name && b.role == "roles/iam.serviceAccountUser"])
    error_message = "serviceAccountUser is granted on the pipelines SA only, never project-wide."
  }
  assert {
    condition     = toset([for b in google_service_account_iam_member.pipelines_act_as : b.member]) == toset([google_service_account.sa["pipelines"].member, google_service_account.sa["scheduler"].member])
    error_message = "Only the pipelines SA itself and the scheduler act as the pipelines SA."
  }
  assert {
    condition     = length([for b in google_project_iam_member.sa : b if strcontains(b.role, "storage")]) == 0
    error_message = "Storage access is bucket-scoped."
  }
  assert {
    condition     = google_artifact_registry_repository_iam_member.pipelines_reader.role == "roles/artifactregistry.reader"
    error_message = "The pipeline reads images from the repository only."
  }
  assert {
    condition     = google_storage_bucket.main.uniform_bucket_level_access && google_storage_bucket.main.public_access_prevention == "enforced" && google_storage_bucket.main.versioning[0].enabled
    error_message = "The bucket has uniform access, public access prevention and versioning."
  }
}

run "database_grants_are_least_privilege" {
  command = plan

  assert {
    condition     = strcontains(output.db_grants_sql, "GRANT SELECT ON ALL TABLES IN SCHEMA water TO \"${local.db_user["status"]}\";")
    error_message = "The public status function may only read."
  }
  assert {
    condition     = strcontains(output.db_grants_sql, "GRANT SELECT, INSERT ON water.water_inferences TO \"${local.db_user["predict"]}\";")
    error_message = "predict writes the inference log and nothing else."
  }
  assert {
    condition     = strcontains(output.db_grants_sql, "GRANT SELECT, INSERT ON water.water_potability TO \"${local.db_user["samples"]}\";")
    error_message = "add_sample writes the training table and nothing else."
  }
  assert {
    condition     = !strcontains(output.db_grants_sql, "DELETE") && !strcontains(output.db_grants_sql, "ALL PRIVILEGES")
    error_message = "No role may delete or hold all privileges."
  }
}
