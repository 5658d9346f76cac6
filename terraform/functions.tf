# The three HTTP functions share one source zip built from the repository:
# potability/, functions/, sql/, a root main.py re-exporting the handlers of
# functions/main.py, and requirements.txt (both in function_source/).
locals {
  repo_root = "${path.module}/.."

  function_source_files = sort([
    for f in fileset(local.repo_root, "{potability,functions,sql}/**") : f
    if !strcontains(f, "__pycache__") && !endswith(f, ".pyc")
  ])

  # The smoke-test account (iam.tf) is bound like a sensor account, to the one sensor id
  # potability/gcp/smoke.py writes (SMOKE_SENSOR): its rows are smoke rows (sensor id prefix
  # smoke-), left out of training, quality control and the status page's figures.
  smoke_sensor_id = "smoke-deploy"
  sensor_bindings = merge(var.sensor_bindings, {
    (google_service_account.sa["smoke"].email) = [local.smoke_sensor_id]
  })

  functions = {
    predict = {
      entry_point = "predict"
      ingress     = "ALLOW_ALL"
      memory      = "1Gi"
      env = {
        ENDPOINT_MODE        = "vertex"
        GOOGLE_CLOUD_PROJECT = var.project_id
        GOOGLE_CLOUD_REGION  = var.region
        VERTEX_ENDPOINT_ID   = google_vertex_ai_endpoint.main.name
        # Caller binding (functions/callers.py): the verified ID token's account may write
        # only the sensor ids var.sensor_bindings gives it; its identity is logged per row.
        PREDICT_ID_TOKEN_AUDIENCE = join(",", [
          "https://${var.region}-${var.project_id}.cloudfunctions.net/${var.name_prefix}-predict",
          "https://${var.name_prefix}-predict-${data.google_project.this.number}.${var.region}.run.app",
        ])
        PREDICT_SENSOR_BINDINGS = jsonencode(local.sensor_bindings)
        # Behind Cloud Run's IAM check the token arrives with its signature replaced by
        # SIGNATURE_REMOVED_BY_GOOGLE (cloud.google.com/run/docs/troubleshooting#signature-removed).
        ID_TOKEN_PLATFORM_VERIFIED = "true"
      }
    }
    samples = {
      entry_point = "add_sample"
      ingress     = "ALLOW_ALL"
      memory      = "512Mi"
      env = {
        SAMPLES_TRUST_PLATFORM_IDENTITY = "true"
        ID_TOKEN_PLATFORM_VERIFIED      = "true"
        # The function's own URLs (both forms a gen2 function answers on), the audiences a
        # regulator's ID token may carry: functions/auth.py verifies the token itself.
        SAMPLES_ID_TOKEN_AUDIENCE = join(",", [
          "https://${var.region}-${var.project_id}.cloudfunctions.net/${var.name_prefix}-samples",
          "https://${var.name_prefix}-samples-${data.google_project.this.number}.${var.region}.run.app",
        ])
      }
    }
    status = {
      entry_point = "status"
      ingress     = "ALLOW_ALL"
      memory      = "512Mi"
      env         = {}
    }
  }

  # What every function needs to reach the database as its own IAM user.
  function_db_env = {
    for k in keys(local.functions) : k => {
      POTABILITY_ENV     = "gcp"
      CLOUD_SQL_INSTANCE = google_sql_database_instance.main.connection_name
      DB_NAME            = google_sql_database.app.name
      DB_USER            = local.db_user[k]
      DB_IAM_AUTH        = "true"
    }
  }

  samples_token_in_secret = var.samples_token_sha256 != ""
  samples_token_env = local.samples_token_in_secret ? {
    SAMPLES_TOKEN_SECRET = google_secret_manager_secret.samples_token_sha256[0].id
  } : { SAMPLES_TOKEN_SHA256 = "" }
}

data "archive_file" "function_source" {
  type        = "zip"
  output_path = "${path.module}/.build/function-source.zip"

  source {
    filename = "main.py"
    content  = file("${path.module}/function_source/main.py")
  }

  source {
    filename = "requirements.txt"
    content  = file("${path.module}/function_source/requirements.txt")
  }

  dynamic "source" {
    for_each = local.function_source_files
    content {
      filename = source.value
      content  = file("${local.repo_root}/${source.value}")
    }
  }
}

resource "google_storage_bucket_object" "function_source" {
  # Content-addressed name: a code change creates a new object and redeploys.
  name   = "functions/source-${data.archive_file.function_source.output_md5}.zip"
  bucket = google_storage_bucket.buckets["main"].name
  source = data.archive_file.function_source.output_path
}

resource "google_cloudfunctions2_function" "fn" {
  #checkov:skip=CKV_GCP_124:Callers (sensors, the regulator, the public status page) are outside Google Cloud; access is enforced by run.invoker IAM on each service, not by network ingress.
  for_each = local.functions

  name        = "${var.name_prefix}-${each.key}"
  location    = var.region
  description = "potability ${each.value.entry_point}"

  build_config {
    runtime         = var.function_runtime
    entry_point     = each.value.entry_point
    service_account = google_service_account.sa["functions-build"].id
    # Our repository (registry.tf): the build account may write here and nowhere else.
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.buckets["main"].name
        object = google_storage_bucket_object.function_source.name
      }
    }
  }

  service_config {
    service_account_email          = google_service_account.sa[each.key].email
    ingress_settings               = each.value.ingress
    available_memory               = each.value.memory
    max_instance_count             = var.function_max_instances
    timeout_seconds                = 60
    all_traffic_on_latest_revision = true
    # The regulator tokens' hashes are re-read from the secret every 30 s (not mounted as an
    # environment value, which an instance reads once at start): a revocation - a new secret
    # version without the digest - applies within a minute (docs/security.md).
    environment_variables = merge(local.function_db_env[each.key], each.value.env,
    each.key == "samples" ? local.samples_token_env : {})
    direct_vpc_egress                = "VPC_EGRESS_PRIVATE_RANGES_ONLY"
    max_instance_request_concurrency = 1

    # Names, not ids: provider docs r/cloudfunctions2_function, "direct_vpc_network_interface".
    direct_vpc_network_interface {
      network    = google_compute_network.vpc.name
      subnetwork = google_compute_subnetwork.main.name
      tags       = ["functions"]
    }
  }

  # IAM before the build and the first start, and Google's 60 s for it to propagate
  # (time_sleep.iam_propagation, iam.tf).
  depends_on = [
    time_sleep.iam_propagation,
    google_project_iam_member.sa,
    google_project_iam_member.functions_build_sources,
    google_storage_bucket_iam_member.sa,
    google_artifact_registry_repository_iam_member.sa,
    google_sql_user.sa,
    google_secret_manager_secret_iam_member.samples_token_sha256,
    google_secret_manager_secret_version.samples_token_sha256,
  ]
}

# Invokers. Gen2 functions are Cloud Run services: run.invoker is granted on the
# service (the function-level IAM resource is known to fail for this role).
#
# allUsers on the status page only while var.public_status_page (default true): an
# organisation enforcing constraints/iam.allowedPolicyMemberDomains refuses that binding at
# apply (terraform/README.md "Organisation policy"); false leaves the page to invokers
# granted outside this configuration.
locals {
  invokers = merge(
    { for sa in distinct(concat(var.sensor_service_accounts, keys(var.sensor_bindings))) : "predict/${sa}" => { fn = "predict", member = "serviceAccount:${sa}" } },
    { "samples/regulator" = { fn = "samples", member = "group:${var.regulator_group}" } },
    # The smoke test (potability/gcp/smoke.py) calls predict and add_sample as its account.
    { "predict/smoke" = { fn = "predict", member = google_service_account.sa["smoke"].member } },
    { "samples/smoke" = { fn = "samples", member = google_service_account.sa["smoke"].member } },
    var.public_status_page ? { "status/public" = { fn = "status", member = "allUsers" } } : {},
  )
}

resource "google_cloud_run_service_iam_member" "invoker" {
  #checkov:skip=CKV_GCP_102:The status function is a deliberately public, read-only status page (allUsers invoker); predict and samples are restricted to named principals.
  for_each = local.invokers

  project  = var.project_id
  location = google_cloudfunctions2_function.fn[each.value.fn].location
  service  = google_cloudfunctions2_function.fn[each.value.fn].name
  role     = "roles/run.invoker"
  member   = each.value.member
}
