# Security-relevant wiring, checked with mocked providers (no Google account):
# `terraform test` plans and "applies" against mock_provider, so computed values
# are fake but every reference, argument and type is checked against the
# provider schema (tools/terraform_schema/, see README.md).

mock_provider "google" {}
mock_provider "archive" {}
mock_provider "time" {}

variables {
  project_id              = "test-project"
  region                  = "europe-west1"
  zone                    = "europe-west1-b"
  regulator_group         = "regulator@example.com"
  alert_emails            = ["ops@example.com"]
  sensor_service_accounts = ["sensor-a@sensors.iam.gserviceaccount.com", "sensor-b@sensors.iam.gserviceaccount.com"]
  engineers               = ["group:ml-eng@example.com"]
  db_admins               = ["alice@example.com"]
  image_tag               = "v1"
  image_digest            = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
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
    condition     = strcontains(google_compute_instance.mlflow.metadata["startup-script"], "--auto-iam-authn") && strcontains(google_compute_instance.mlflow.metadata["startup-script"], "gs://test-project-potability-mlflow/mlflow-artifacts")
    error_message = "MLflow must use the Auth Proxy with IAM auth and the bucket as artifact store."
  }
  assert {
    condition     = google_compute_firewall.iap_to_mlflow.source_ranges == toset(["35.235.240.0/20"]) && jsonencode([for a in google_compute_firewall.iap_to_mlflow.allow : a.ports]) == jsonencode([["5000"]])
    error_message = "Engineers reach the MLflow UI (port 5000 only, no SSH) through IAP TCP forwarding only."
  }
  assert {
    condition     = google_compute_firewall.internal_to_mlflow.source_ranges == toset([google_compute_subnetwork.pipelines.ip_cidr_range, google_compute_subnetwork.jobs.ip_cidr_range]) && google_compute_subnetwork.pipelines.ip_cidr_range == "10.10.8.0/24" && google_compute_subnetwork.jobs.ip_cidr_range == "10.10.9.0/26"
    error_message = "Only the pipeline jobs' PSC interfaces (attachment subnet) and the operators' job (jobs subnet) reach MLflow: not the functions' subnet, not the private services range."
  }
  assert {
    condition     = length(setintersection(google_compute_firewall.internal_to_mlflow.source_ranges, toset([google_compute_subnetwork.main.ip_cidr_range]))) == 0
    error_message = "The public status function's Direct VPC egress (main subnet) must not reach MLflow."
  }
  assert {
    condition = alltrue([for s in [
      "--app-name basic-auth",
      "default_permission = NO_PERMISSIONS",
      google_secret_manager_secret.mlflow["admin"].secret_id,
      google_secret_manager_secret.mlflow["pipelines"].secret_id,
      "sha256sum --check --strict",
      "e48f49397a69a1b509a74ce025dcf76019da0dcaae17f744c524dd19e9824800  /tmp/cloud-sql-proxy",
      "mlflow[auth]==",
    ] : strcontains(google_compute_instance.mlflow.metadata["startup-script"], s)])
    error_message = "MLflow authenticates every caller (basic-auth app, passwords from Secret Manager) and the Auth Proxy download is checksummed."
  }
  assert {
    condition     = strcontains(google_compute_instance.mlflow.metadata["startup-script"], "--default-artifact-root gs://test-project-potability-mlflow/mlflow-artifacts")
    error_message = "MLflow's artifacts live in their own bucket."
  }
  assert {
    condition     = strcontains(google_compute_instance.mlflow.metadata["startup-script"], "--no-serve-artifacts --workers 2\n") && google_compute_instance.mlflow.machine_type == "e2-small"
    error_message = "mlflow server runs 2 workers on the e2-small (its default 4 take ~1.4 GB of the VM's 2 GB; variables.tf mlflow_workers)."
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
      google_service_account.sa["smoke"].member,
    ])
    error_message = "Only the sensors' service accounts and the smoke-test account may invoke predict."
  }
  assert {
    condition     = toset([for k, m in google_cloud_run_service_iam_member.invoker : m.member if m.service == google_cloudfunctions2_function.fn["samples"].name]) == toset(["group:regulator@example.com", google_service_account.sa["smoke"].member])
    error_message = "Only the regulator group and the smoke-test account may invoke add_sample."
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
    condition = (
      jsondecode(base64decode(google_cloud_scheduler_job.training.http_target[0].body)).pscInterfaceConfig == { networkAttachment = google_compute_network_attachment.pipelines.name } &&
      !contains(keys(jsondecode(base64decode(google_cloud_scheduler_job.training.http_target[0].body))), "network")
    )
    error_message = "The run reaches Cloud SQL and MLflow through a PSC interface on the network attachment, not through (non-transitive) peering."
  }
  assert {
    condition     = jsondecode(base64decode(google_cloud_scheduler_job.training.http_target[0].body)).serviceAccount == google_service_account.sa["pipelines"].email
    error_message = "The pipeline runs as the pipelines SA."
  }
  assert {
    condition     = jsondecode(base64decode(google_cloud_scheduler_job.training.http_target[0].body)).runtimeConfig.gcsOutputDirectory == "gs://test-project-potability-pipeline-root/pipeline-root"
    error_message = "Pipeline root is in its own bucket."
  }
  assert {
    condition = toset(keys(jsondecode(base64decode(google_cloud_scheduler_job.training.http_target[0].body)).runtimeConfig.parameterValues)) == toset([
      "recall_floor", "test_fraction", "split_seed", "cv_folds", "grids", "promotion_false_rate", "promotion_look_days", "promotion_approval", "candidate_expiry_days", "model_name", "mlflow_tracking_uri", "mlflow_credentials_secret",
      "database", "deploy_target", "project", "region",
      "endpoint_id", "serving_image", "endpoint_machine_type", "endpoint_min_replicas", "endpoint_max_replicas",
      "endpoint_cpu_target",
    ])
    error_message = "parameterValues carries exactly the pipeline's parameter names."
  }
  assert {
    condition = (
      jsondecode(base64decode(google_cloud_scheduler_job.training.http_target[0].body)).runtimeConfig.parameterValues.serving_image == "europe-west1-docker.pkg.dev/test-project/potability/potability@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" &&
      jsondecode(base64decode(google_cloud_scheduler_job.training.http_target[0].body)).runtimeConfig.parameterValues.endpoint_id == google_vertex_ai_endpoint.main.name &&
      jsondecode(base64decode(google_cloud_scheduler_job.training.http_target[0].body)).runtimeConfig.parameterValues.database.user == trimsuffix(google_service_account.sa["pipelines"].email, ".gserviceaccount.com") &&
      jsondecode(base64decode(google_cloud_scheduler_job.training.http_target[0].body)).runtimeConfig.parameterValues.mlflow_tracking_uri == "http://${google_compute_instance.mlflow.network_interface[0].network_ip}:5000" &&
      jsondecode(base64decode(google_cloud_scheduler_job.training.http_target[0].body)).runtimeConfig.parameterValues.mlflow_credentials_secret == google_secret_manager_secret.mlflow["pipelines"].id &&
      jsondecode(base64decode(google_cloud_scheduler_job.training.http_target[0].body)).runtimeConfig.parameterValues.recall_floor == 0.2
    )
    error_message = "Pipeline parameters come from Terraform-managed resources."
  }
}


# The exact roles of every service account: a new project-wide role, a role
# dropped or one renamed fails here (not a substring search).
run "exact_project_roles_of_every_service_account" {
  command = plan

  assert {
    condition = jsonencode({
      for k, sa in google_service_account.sa : k => sort([for b in google_project_iam_member.sa : b.role if b.member == sa.member])
      }) == jsonencode({
      pipelines       = sort(["roles/aiplatform.user", "roles/cloudsql.client", "roles/cloudsql.instanceUser", "roles/logging.logWriter", "roles/monitoring.metricWriter"])
      mlflow          = sort(["roles/cloudsql.client", "roles/cloudsql.instanceUser", "roles/logging.logWriter", "roles/monitoring.metricWriter"])
      predict         = sort([google_project_iam_custom_role.roles["endpoint_predictor"].name, "roles/cloudsql.client", "roles/cloudsql.instanceUser"])
      samples         = sort(["roles/cloudsql.client", "roles/cloudsql.instanceUser"])
      status          = sort(["roles/cloudsql.client", "roles/cloudsql.instanceUser"])
      migrator        = sort(["roles/cloudsql.client", "roles/cloudsql.instanceUser"])
      scheduler       = sort([google_project_iam_custom_role.roles["pipeline_starter"].name])
      functions-build = sort(["roles/logging.logWriter"])
      image-build     = sort(["roles/logging.logWriter"])
      smoke           = []
      model-job       = []
    })
    error_message = "Project-wide roles differ from the reviewed set (iam.tf)."
  }
  assert {
    condition = (
      google_project_iam_custom_role.roles["endpoint_predictor"].permissions == toset(["aiplatform.endpoints.predict"]) &&
      google_project_iam_custom_role.roles["pipeline_starter"].permissions == toset(["aiplatform.metadataStores.get", "aiplatform.pipelineJobs.create"]) &&
      length(google_project_iam_custom_role.roles) == 2
    )
    error_message = "Custom roles hold exactly the one permission their caller uses."
  }
  assert {
    condition     = alltrue([for b in google_project_iam_member.db_admins : startswith(b.member, "user:")])
    error_message = "No other project binding names a service account."
  }
}

run "exact_resource_level_grants" {
  command = plan

  assert {
    condition = toset([for b in google_storage_bucket_iam_member.sa : "${b.bucket} ${b.role} ${b.member}"]) == toset([
      "test-project-potability-pipeline-root roles/storage.objectUser ${google_service_account.sa["pipelines"].member}",
      "test-project-potability-mlflow roles/storage.objectUser ${google_service_account.sa["pipelines"].member}",
      "test-project-potability-mlflow roles/storage.objectUser ${google_service_account.sa["mlflow"].member}",
      "test-project-potability roles/storage.objectViewer ${google_service_account.sa["image-build"].member}",
      "test-project-potability-archive roles/storage.objectCreator ${google_service_account.sa["migrator"].member}",
      "test-project-potability-archive roles/storage.objectViewer ${google_service_account.sa["migrator"].member}",
    ])
    error_message = "Each bucket grant is one account on one single-purpose bucket; the archive is create-only (no overwrite, no delete)."
  }
  assert {
    condition = toset([for b in google_artifact_registry_repository_iam_member.sa : "${b.repository} ${b.role} ${b.member}"]) == toset([
      "${google_artifact_registry_repository.images.name} roles/artifactregistry.reader ${google_service_account.sa["pipelines"].member}",
      "${google_artifact_registry_repository.pipelines.name} roles/artifactregistry.reader ${google_service_account.sa["scheduler"].member}",
      "${google_artifact_registry_repository.functions.name} roles/artifactregistry.writer ${google_service_account.sa["functions-build"].member}",
      "${google_artifact_registry_repository.images.name} roles/artifactregistry.writer ${google_service_account.sa["image-build"].member}",
    ])
    error_message = "Repository grants: the scheduler reads the KFP repository only, the build writes its own repository only."
  }
  assert {
    condition     = google_artifact_registry_repository.pipelines.format == "KFP" && google_artifact_registry_repository.pipelines.repository_id == "potability-pipelines"
    error_message = "The compiled pipeline lives in a KFP repository named <prefix>-pipelines."
  }
  assert {
    condition = toset([for b in google_service_account_iam_member.pipelines_act_as : "${b.service_account_id} ${b.role} ${b.member}"]) == toset([
      "${google_service_account.sa["pipelines"].name} roles/iam.serviceAccountUser ${google_service_account.sa["pipelines"].member}",
      "${google_service_account.sa["pipelines"].name} roles/iam.serviceAccountUser ${google_service_account.sa["scheduler"].member}",
    ])
    error_message = "Only the pipelines SA itself and the scheduler act as the pipelines SA."
  }
  assert {
    condition = toset([for b in google_secret_manager_secret_iam_member.mlflow : "${b.secret_id} ${b.role} ${b.member}"]) == toset([
      "${google_secret_manager_secret.mlflow["admin"].id} roles/secretmanager.secretVersionAdder ${google_service_account.sa["mlflow"].member}",
      "${google_secret_manager_secret.mlflow["admin"].id} roles/secretmanager.secretAccessor ${google_service_account.sa["mlflow"].member}",
      "${google_secret_manager_secret.mlflow["pipelines"].id} roles/secretmanager.secretVersionAdder ${google_service_account.sa["mlflow"].member}",
      "${google_secret_manager_secret.mlflow["pipelines"].id} roles/secretmanager.secretAccessor ${google_service_account.sa["mlflow"].member}",
      "${google_secret_manager_secret.mlflow["pipelines"].id} roles/secretmanager.secretAccessor ${google_service_account.sa["pipelines"].member}",
      "${google_secret_manager_secret.mlflow["admin"].id} roles/secretmanager.secretAccessor group:ml-eng@example.com",
    ])
    error_message = "MLflow passwords: the VM writes them, the pipeline reads its own, engineers read the admin one."
  }
  assert {
    condition = toset([for b in google_cloud_run_v2_job_iam_member.engineers : "${b.name} ${b.role} ${b.member}"]) == toset([
      "potability-migrate roles/run.invoker group:ml-eng@example.com",
      "potability-migrate roles/run.viewer group:ml-eng@example.com",
    ])
    error_message = "Engineers may run and watch the migration job, nothing else."
  }
  assert {
    condition     = google_cloudfunctions2_function.fn["predict"].build_config[0].docker_repository == google_artifact_registry_repository.functions.id
    error_message = "The functions build into our repository (where the build SA may write)."
  }
  assert {
    condition = alltrue([for b in google_storage_bucket.buckets :
      b.uniform_bucket_level_access && b.public_access_prevention == "enforced" && b.versioning[0].enabled && !b.force_destroy
    ])
    error_message = "Every bucket has uniform access, public access prevention and versioning."
  }
  assert {
    condition     = length(google_bigquery_dataset_iam_member.archive_readers) == 0 && length(google_project_iam_member.archive_query_jobs) == 0 && length(google_storage_bucket_iam_member.archive_readers) == 0
    error_message = "Without operators (and archive_regulator_access off) nobody may query the archive table."
  }
}

run "direct_vpc_egress_and_ingress" {
  command = plan

  assert {
    condition = alltrue([for f in google_cloudfunctions2_function.fn :
      f.service_config[0].direct_vpc_egress == "VPC_EGRESS_PRIVATE_RANGES_ONLY" &&
      f.service_config[0].direct_vpc_network_interface[0].network == "potability-vpc" &&
      f.service_config[0].direct_vpc_network_interface[0].subnetwork == "potability-europe-west1"
    ])
    error_message = "Functions use Direct VPC egress for private ranges only, given by network and subnetwork *name* (provider docs)."
  }
  assert {
    condition     = { for k, f in google_cloudfunctions2_function.fn : k => f.service_config[0].ingress_settings } == { predict = "ALLOW_ALL", samples = "ALLOW_ALL", status = "ALLOW_ALL" }
    error_message = "Ingress: callers are outside Google Cloud, access is IAM (run.invoker) - see the checkov skip in functions.tf."
  }
  assert {
    condition = (
      google_cloud_run_v2_job.migrate[0].template[0].template[0].vpc_access[0].egress == "PRIVATE_RANGES_ONLY" &&
      google_cloud_run_v2_job.migrate[0].template[0].template[0].vpc_access[0].network_interfaces[0].network == "potability-vpc" &&
      google_cloud_run_v2_job.migrate[0].template[0].template[0].vpc_access[0].network_interfaces[0].subnetwork == "potability-europe-west1"
    )
    error_message = "The migration job reaches Cloud SQL's private IP through Direct VPC egress."
  }
  assert {
    condition = (
      google_compute_network_attachment.pipelines.subnetworks == tolist([google_compute_subnetwork.pipelines.self_link]) &&
      google_compute_subnetwork.pipelines.network == google_compute_network.vpc.id &&
      google_sql_database_instance.main.settings[0].ip_configuration[0].private_network == google_compute_network.vpc.id
    )
    error_message = "The PSC interfaces get addresses in our VPC, the VPC that is peered with Cloud SQL's private IP."
  }
}

run "migrations_are_a_job" {
  command = plan

  assert {
    condition = (
      google_cloud_run_v2_job.migrate[0].template[0].template[0].service_account == google_service_account.sa["migrator"].email &&
      google_cloud_run_v2_job.migrate[0].template[0].template[0].containers[0].image == "europe-west1-docker.pkg.dev/test-project/potability/potability@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" &&
      google_cloud_run_v2_job.migrate[0].template[0].template[0].containers[0].args == tolist(["potability", "migrate", "--seed"])
    )
    error_message = "The job runs `potability migrate` in the image pinned by digest, as the migrator SA."
  }
  assert {
    condition = { for e in google_cloud_run_v2_job.migrate[0].template[0].template[0].containers[0].env : e.name => e.value } == {
      POTABILITY_ENV     = "gcp"
      CLOUD_SQL_INSTANCE = google_sql_database_instance.main.connection_name
      DB_NAME            = "potability"
      DB_USER            = trimsuffix(google_service_account.sa["migrator"].email, ".gserviceaccount.com")
      DB_IAM_AUTH        = "true"
      DB_ROLE_MEMBERS = join(",", [
        "predict=${trimsuffix(google_service_account.sa["predict"].email, ".gserviceaccount.com")}",
        "samples=${trimsuffix(google_service_account.sa["samples"].email, ".gserviceaccount.com")}",
        "status=${trimsuffix(google_service_account.sa["status"].email, ".gserviceaccount.com")}",
        "pipelines=${trimsuffix(google_service_account.sa["pipelines"].email, ".gserviceaccount.com")}",
        "mlflow=${trimsuffix(google_service_account.sa["mlflow"].email, ".gserviceaccount.com")}",
      ])
    }
    error_message = "The job connects as the migrator's IAM user and makes each service's user a member of its access role."
  }
  assert {
    condition     = google_sql_user.sa["migrator"].type == "CLOUD_IAM_SERVICE_ACCOUNT" && google_sql_user.sa["migrator"].database_roles == tolist(["cloudsqlsuperuser"])
    error_message = "The migrator's IAM database user may create the owner and access roles."
  }
  assert {
    condition     = alltrue([for k, u in google_sql_user.sa : k == "migrator" || u.database_roles == null || length(coalesce(u.database_roles, [])) == 0])
    error_message = "No other service account's database user is a superuser."
  }
}

run "teardown_does_not_block" {
  command = plan

  assert {
    condition     = google_service_networking_connection.private_services.deletion_policy == "ABANDON"
    error_message = "The private services peering is abandoned on destroy (Google releases it with the instance)."
  }
  assert {
    condition     = alltrue([for u in concat(values(google_sql_user.sa), values(google_sql_user.admins)) : u.deletion_policy == "ABANDON"])
    error_message = "IAM database users (which hold roles after migrations) are abandoned, not dropped, on destroy."
  }
  assert {
    condition     = google_cloud_run_v2_job.migrate[0].deletion_protection == false
    error_message = "The migration job can be destroyed."
  }
}

run "retention_and_cleanup" {
  command = plan

  assert {
    condition = alltrue([for b in google_storage_bucket.buckets :
      anytrue([for r in b.lifecycle_rule : r.action[0].type == "Delete" && r.condition[0].days_since_noncurrent_time == 30])
    ])
    error_message = "Noncurrent object versions are deleted after 30 days in every bucket."
  }
  assert {
    condition = alltrue([for r in [google_artifact_registry_repository.images, google_artifact_registry_repository.functions, google_artifact_registry_repository.pipelines] :
      !r.cleanup_policy_dry_run &&
      anytrue([for p in r.cleanup_policies : p.action == "DELETE" && try(p.condition[0].older_than, "") == "2592000s"]) &&
      anytrue([for p in r.cleanup_policies : p.action == "KEEP" && try(p.most_recent_versions[0].keep_count, 0) > 0])
    ])
    error_message = "Every repository deletes old versions (not dry run) and keeps the most recent ones."
  }
}

# Operators (operators.tf, issue 22): exactly what `potability model ...` uses, for the group.
run "operators_get_exactly_what_the_model_command_uses" {
  command = plan

  variables {
    operators = "model-ops@example.com"
  }

  assert {
    condition     = toset(keys(google_project_iam_member.operators)) == toset(["custom:model_operator", "roles/cloudsql.client", "roles/cloudsql.instanceUser", "roles/logging.logWriter"]) && alltrue([for m in google_project_iam_member.operators : m.member == "group:model-ops@example.com"])
    error_message = "The operators group gets Cloud SQL connect + IAM login, log writing and the model_operator custom role, nothing else on the project."
  }
  assert {
    condition = toset(google_project_iam_custom_role.model_operator[0].permissions) == toset([
      "aiplatform.endpoints.deploy", "aiplatform.endpoints.get", "aiplatform.endpoints.predict",
      "aiplatform.endpoints.undeploy", "aiplatform.models.deploy", "aiplatform.models.get",
      "aiplatform.models.list", "aiplatform.models.undeploy", "aiplatform.models.upload",
    ])
    error_message = "The model_operator role holds exactly the permissions of the endpoint switch."
  }
  assert {
    condition     = google_sql_user.operators[0].type == "CLOUD_IAM_GROUP" && google_sql_user.operators[0].name == "model-ops@example.com"
    error_message = "The group logs in to Cloud SQL as itself (IAM group authentication)."
  }
  assert {
    condition     = google_secret_manager_secret_iam_member.operators_mlflow[0].role == "roles/secretmanager.secretAccessor" && google_secret_manager_secret_iam_member.operators_mlflow[0].member == "group:model-ops@example.com" && google_secret_manager_secret_iam_member.operators_mlflow[0].secret_id == google_secret_manager_secret.mlflow["pipelines"].id
    error_message = "Operators read only the MLflow pipelines password (to move the champion alias)."
  }
  assert {
    condition     = google_storage_bucket_iam_member.operators_mlflow[0].role == "roles/storage.objectViewer" && google_storage_bucket_iam_member.operators_mlflow[0].bucket == google_storage_bucket.buckets["mlflow"].name
    error_message = "Operators only read the MLflow artifacts bucket."
  }
  assert {
    condition     = strcontains(local.db_role_members, "operators=model-ops@example.com")
    error_message = "The migration job makes the group a member of water_operators."
  }
  assert {
    condition = toset(concat(
      [for m in google_bigquery_dataset_iam_member.archive_readers : "dataset ${m.role} ${m.member}"],
      [for m in google_project_iam_member.archive_query_jobs : "project ${m.role} ${m.member}"],
      [for m in google_storage_bucket_iam_member.archive_readers : "${m.bucket} ${m.role} ${m.member}"],
      )) == toset([
      "dataset roles/bigquery.dataViewer group:model-ops@example.com",
      "project roles/bigquery.jobUser group:model-ops@example.com",
      "test-project-potability-archive roles/storage.objectViewer group:model-ops@example.com",
    ])
    error_message = "Operators may query the archive table (archive.tf); the regulator only with archive_regulator_access."
  }
}

# The operators' path without a VPN (model_job.tf): `potability model ...` as a Cloud Run job.
run "operators_run_the_model_command_as_a_cloud_run_job" {
  command = plan

  variables {
    operators = "model-ops@example.com"
  }

  assert {
    condition = (
      google_cloud_run_v2_job.model[0].name == "potability-model" &&
      google_cloud_run_v2_job.model[0].template[0].template[0].service_account == google_service_account.sa["model-job"].email &&
      google_cloud_run_v2_job.model[0].template[0].template[0].containers[0].image == google_cloud_run_v2_job.migrate[0].template[0].template[0].containers[0].image &&
      google_cloud_run_v2_job.model[0].template[0].template[0].containers[0].args == tolist(["potability", "model", "status"]) &&
      google_cloud_run_v2_job.model[0].template[0].template[0].max_retries == 0
    )
    error_message = "The model job runs `potability model` from the project image as its own account, never retried behind the operator's back."
  }
  assert {
    condition = (
      google_cloud_run_v2_job.model[0].template[0].template[0].vpc_access[0].network_interfaces[0].subnetwork == google_compute_subnetwork.jobs.name &&
      google_cloud_run_v2_job.model[0].template[0].template[0].vpc_access[0].egress == "PRIVATE_RANGES_ONLY" &&
      contains(google_compute_firewall.internal_to_mlflow.source_ranges, google_compute_subnetwork.jobs.ip_cidr_range)
    )
    error_message = "The job egresses into the jobs subnet, which the MLflow firewall admits (Cloud SQL's private IP through the VPC)."
  }
  assert {
    condition = (
      { for e in google_cloud_run_v2_job.model[0].template[0].template[0].containers[0].env : e.name => e.value if e.value != null && e.value != "" }["DB_USER"] == trimsuffix(google_service_account.sa["model-job"].email, ".gserviceaccount.com") &&
      one([for e in google_cloud_run_v2_job.model[0].template[0].template[0].containers[0].env : e.value_source[0].secret_key_ref[0].secret if e.name == "MLFLOW_TRACKING_PASSWORD"]) == google_secret_manager_secret.mlflow["pipelines"].secret_id
    )
    error_message = "The job logs in to Cloud SQL as its own IAM user and to MLflow as `pipelines`, the password from Secret Manager."
  }
  assert {
    condition     = toset(keys(google_project_iam_member.model_job)) == toset(["custom:model_operator", "roles/cloudsql.client", "roles/cloudsql.instanceUser", "roles/logging.logWriter"]) && alltrue([for m in google_project_iam_member.model_job : m.member == google_service_account.sa["model-job"].member])
    error_message = "The job's account gets what the operators group gets on the project, nothing more."
  }
  assert {
    condition = (
      google_secret_manager_secret_iam_member.model_job[0].secret_id == google_secret_manager_secret.mlflow["pipelines"].id &&
      google_secret_manager_secret_iam_member.model_job[0].role == "roles/secretmanager.secretAccessor" &&
      google_storage_bucket_iam_member.model_job[0].bucket == google_storage_bucket.buckets["mlflow"].name &&
      google_storage_bucket_iam_member.model_job[0].role == "roles/storage.objectViewer"
    )
    error_message = "The job's account reads the MLflow pipelines password and the MLflow bucket, as the operators do."
  }
  assert {
    condition = toset([for b in google_cloud_run_v2_job_iam_member.operators : "${b.name} ${b.role} ${b.member}"]) == toset([
      "potability-model roles/run.jobsExecutorWithOverrides group:model-ops@example.com",
      "potability-model roles/run.viewer group:model-ops@example.com",
    ])
    error_message = "Operators may execute the model job with their arguments (overrides) and follow it, on that job only."
  }
  assert {
    condition     = strcontains(local.db_role_members, "model-job=${trimsuffix(google_service_account.sa["model-job"].email, ".gserviceaccount.com")}") && google_sql_user.sa["model-job"].type == "CLOUD_IAM_SERVICE_ACCOUNT"
    error_message = "The job's account is a Cloud SQL IAM user, made a member of water_operators by the migration job."
  }
}

run "no_operators_no_model_job" {
  command = plan

  assert {
    condition     = length(google_cloud_run_v2_job.model) == 0 && length(google_project_iam_member.model_job) == 0 && length(google_cloud_run_v2_job_iam_member.operators) == 0
    error_message = "Without an operators group there is no model job and its account holds nothing."
  }
}

# Blocker 2 of issue 28: the functions' build reads its source from Google's gcf-v2-sources
# bucket (iam.tf), and holds nothing on the main bucket (which stages the image's build source).
run "function_build_reads_only_the_gcf_sources_bucket" {
  command = plan

  assert {
    condition = (
      google_project_iam_member.functions_build_sources.role == "roles/storage.objectViewer" &&
      google_project_iam_member.functions_build_sources.member == google_service_account.sa["functions-build"].member &&
      google_project_iam_member.functions_build_sources.condition[0].expression == "resource.name == \"projects/_/buckets/gcf-v2-sources-${data.google_project.this.number}-europe-west1\" || resource.name.startsWith(\"projects/_/buckets/gcf-v2-sources-${data.google_project.this.number}-europe-west1/\")"
    )
    error_message = "The functions' build account reads objects of this project's gcf-v2-sources-<number>-<region> bucket only."
  }
  assert {
    condition     = length([for b in google_storage_bucket_iam_member.sa : b if b.member == google_service_account.sa["functions-build"].member]) == 0
    error_message = "The functions' build account holds nothing on our buckets (the main bucket stages the project image's build source)."
  }
}

# Google's example waits 60 s after the grants before the function (iam.tf).
run "iam_propagation_wait" {
  command = plan

  assert {
    condition     = time_sleep.iam_propagation.create_duration == "60s"
    error_message = "The apply waits 60 s for IAM to propagate, as Google's cloudfunctions2_basic_builder example."
  }
}

# Smoke-test account (iam.tf, functions.tf): bound like a sensor to smoke-deploy only.
run "smoke_test_account" {
  command = plan

  assert {
    condition     = jsondecode(google_cloudfunctions2_function.fn["predict"].service_config[0].environment_variables["PREDICT_SENSOR_BINDINGS"])[google_service_account.sa["smoke"].email] == ["smoke-deploy"]
    error_message = "The smoke-test account may write the sensor id smoke-deploy only."
  }
  assert {
    condition = toset([for b in google_service_account_iam_member.engineers_smoke_tokens : "${b.service_account_id} ${b.role} ${b.member}"]) == toset([
      "${google_service_account.sa["smoke"].name} roles/iam.serviceAccountOpenIdTokenCreator group:ml-eng@example.com",
    ])
    error_message = "Engineers may mint the smoke account's ID tokens (nothing else on it)."
  }
  assert {
    condition     = output.smoke_service_account == google_service_account.sa["smoke"].email
    error_message = "make gcp-deploy reads the smoke account from the smoke_service_account output."
  }
}

run "status_page_not_public" {
  command = plan

  variables {
    public_status_page = false
  }

  assert {
    condition     = length([for m in google_cloud_run_service_iam_member.invoker : m if m.member == "allUsers"]) == 0
    error_message = "public_status_page = false: no allUsers binding (organisations enforcing iam.allowedPolicyMemberDomains refuse it)."
  }
}

run "no_operators_no_grants" {
  command = plan

  assert {
    condition     = length(google_project_iam_member.operators) == 0 && length(google_sql_user.operators) == 0 && length(google_project_iam_custom_role.model_operator) == 0
    error_message = "Without an operators group nobody is granted anything."
  }
}

run "inference_log_maintenance_is_an_hourly_job" {
  command = plan

  assert {
    condition = (
      google_cloud_run_v2_job.maintenance[0].template[0].template[0].service_account == google_service_account.sa["migrator"].email &&
      google_cloud_run_v2_job.maintenance[0].template[0].template[0].containers[0].image == google_cloud_run_v2_job.migrate[0].template[0].template[0].containers[0].image &&
      google_cloud_run_v2_job.maintenance[0].template[0].template[0].containers[0].args == tolist(["potability", "maintenance"])
    )
    error_message = "The maintenance job runs `potability maintenance` in the migration job's image, as the migrator SA (it creates and drops partitions as water_owner)."
  }
  assert {
    condition = { for e in google_cloud_run_v2_job.maintenance[0].template[0].template[0].containers[0].env : e.name => e.value } == {
      POTABILITY_ENV           = "gcp"
      CLOUD_SQL_INSTANCE       = google_sql_database_instance.main.connection_name
      DB_NAME                  = "potability"
      DB_USER                  = trimsuffix(google_service_account.sa["migrator"].email, ".gserviceaccount.com")
      DB_IAM_AUTH              = "true"
      INFERENCE_RETENTION_DAYS = "90"
      INFERENCE_ARCHIVE_URI    = "gs://test-project-potability-archive/inference-log"
    }
    error_message = "The job gets the retention and the archive location (archive bucket + inference_archive_prefix)."
  }
  assert {
    condition = (
      google_cloud_run_v2_job.maintenance[0].template[0].template[0].vpc_access[0].egress == "PRIVATE_RANGES_ONLY" &&
      google_cloud_run_v2_job.maintenance[0].template[0].template[0].vpc_access[0].network_interfaces[0].subnetwork == "potability-europe-west1"
    )
    error_message = "The maintenance job reaches Cloud SQL's private IP through Direct VPC egress."
  }
  assert {
    condition = (
      google_cloud_scheduler_job.maintenance[0].schedule == "30 * * * *" &&
      google_cloud_scheduler_job.maintenance[0].time_zone == "Etc/UTC" &&
      google_cloud_scheduler_job.maintenance[0].http_target[0].http_method == "POST" &&
      google_cloud_scheduler_job.maintenance[0].http_target[0].uri == "https://run.googleapis.com/v2/projects/test-project/locations/europe-west1/jobs/potability-maintenance:run" &&
      google_cloud_scheduler_job.maintenance[0].http_target[0].oauth_token[0].service_account_email == google_service_account.sa["scheduler"].email
    )
    error_message = "Cloud Scheduler runs the job daily through the Cloud Run Admin API v2 jobs.run, with the scheduler SA's OAuth token."
  }
  assert {
    condition = (
      google_cloud_run_v2_job_iam_member.maintenance_scheduler[0].name == "potability-maintenance" &&
      google_cloud_run_v2_job_iam_member.maintenance_scheduler[0].role == "roles/run.invoker" &&
      google_cloud_run_v2_job_iam_member.maintenance_scheduler[0].member == google_service_account.sa["scheduler"].member
    )
    error_message = "The scheduler may run the maintenance job, and only that job."
  }
}
