# One service account per role; no basic roles. Project-wide grants are only
# those Google offers no narrower resource for (Cloud SQL connect, log/metric
# writing) plus two one-permission custom roles; everything else is granted on
# the resource (bucket, repository, secret, service account, Cloud Run job).
# terraform/tests/security.tftest.hcl asserts the exact set of every account.
locals {
  service_accounts = {
    pipelines       = "Vertex AI training pipeline"
    mlflow          = "MLflow tracking server VM"
    predict         = "Inference function (predict)"
    samples         = "Samples function (add_sample)"
    status          = "Public status function (status)"
    scheduler       = "Cloud Scheduler: starts the daily pipeline run"
    functions-build = "Cloud Build for the functions' source"
    image-build     = "Cloud Build: the project image (make gcp-deploy)"
    migrator        = "Cloud Run jobs: database migrations and the inference log's maintenance"
    # Engineers impersonate it (OpenID token creator, below) for the smoke test
    # `make gcp-deploy` ends with (potability/gcp/smoke.py): an invoker of predict and
    # add_sample, bound to the sensor id smoke-deploy (functions.tf), nothing else.
    smoke = "Deploy smoke test: predict and add_sample as sensor smoke-deploy"
    # `potability model ...` as a Cloud Run job (model_job.tf): the operators' path
    # without a VPN, granted what the command uses (model_job.tf).
    model-job = "Cloud Run job: potability model (operators)"
  }

  # Custom roles: exactly the permission a caller uses, where the predefined role
  # would be aiplatform.user (hundreds of permissions, project-wide). Vertex AI
  # endpoints have no resource-level IAM in the GA provider 8.7.
  custom_roles = {
    endpoint_predictor = {
      title       = "potability: online prediction"
      description = "Call predict on Vertex AI endpoints (the predict function)."
      permissions = ["aiplatform.endpoints.predict"]
    }
    pipeline_starter = {
      title       = "potability: start pipeline runs"
      description = "Create Vertex AI pipeline jobs (the daily schedule)."
      # metadataStores.get: creating a pipeline job reads the project's ML Metadata
      # store (vertex-ai/docs/tabular-data/tabular-workflows/service-accounts).
      permissions = ["aiplatform.metadataStores.get", "aiplatform.pipelineJobs.create"]
    }
  }

  # "custom:<key>" names a role of local.custom_roles.
  project_roles = {
    # The pipeline orchestrates Vertex AI itself (pipeline tasks, ML metadata, model
    # upload, endpoint deploy/undeploy, operations): aiplatform.user, see README.md.
    pipelines = [
      "roles/aiplatform.user",
      "roles/cloudsql.client",
      "roles/cloudsql.instanceUser",
      "roles/logging.logWriter",
      "roles/monitoring.metricWriter",
    ]
    mlflow = [
      "roles/cloudsql.client",
      "roles/cloudsql.instanceUser",
      "roles/logging.logWriter",
      "roles/monitoring.metricWriter",
    ]
    predict         = ["custom:endpoint_predictor", "roles/cloudsql.client", "roles/cloudsql.instanceUser"]
    samples         = ["roles/cloudsql.client", "roles/cloudsql.instanceUser"]
    status          = ["roles/cloudsql.client", "roles/cloudsql.instanceUser"]
    migrator        = ["roles/cloudsql.client", "roles/cloudsql.instanceUser"]
    scheduler       = ["custom:pipeline_starter"]
    functions-build = ["roles/logging.logWriter"]
    # Cloud Build as its own account, not the project default (on projects created since
    # mid-2024 the Compute Engine default account, often without roles): build logs to
    # Cloud Logging only (cloudbuild.yaml), hence no logs bucket (Google: build/docs/
    # securing-builds/configure-user-specified-service-accounts).
    image-build = ["roles/logging.logWriter"]
  }

  project_bindings = merge([
    for sa, roles in local.project_roles : { for r in roles : "${sa}/${r}" => { sa = sa, role = r } }
  ]...)

  # Whole-bucket grants on buckets that hold one kind of data each (storage.tf).
  bucket_grants = {
    "pipeline_root/pipelines" = { bucket = "pipeline_root", sa = "pipelines", role = "roles/storage.objectUser" }
    "mlflow/pipelines"        = { bucket = "mlflow", sa = "pipelines", role = "roles/storage.objectUser" }
    "mlflow/mlflow"           = { bucket = "mlflow", sa = "mlflow", role = "roles/storage.objectUser" }
    # No grant on the main bucket for the functions' build: Cloud Functions copies the
    # source to its own bucket and the build reads it there (functions_build_sources below).
    # The image build reads the source `make gcp-deploy` stages under gs://<main>/cloudbuild/.
    "main/image-build" = { bucket = "main", sa = "image-build", role = "roles/storage.objectViewer" }
    # The maintenance job (maintenance.tf) writes the archive create-only and reads it back
    # to verify: objectCreator cannot replace or delete an object, so no run can overwrite
    # a day already archived.
    "archive/migrator/create" = { bucket = "archive", sa = "migrator", role = "roles/storage.objectCreator" }
    "archive/migrator/read"   = { bucket = "archive", sa = "migrator", role = "roles/storage.objectViewer" }
  }

  # Repository-level grants (registry.tf).
  repository_grants = {
    "images/pipelines"          = { repository = "images", sa = "pipelines", role = "roles/artifactregistry.reader" }
    "pipelines/scheduler"       = { repository = "pipelines", sa = "scheduler", role = "roles/artifactregistry.reader" }
    "functions/functions-build" = { repository = "functions", sa = "functions-build", role = "roles/artifactregistry.writer" }
    "images/image-build"        = { repository = "images", sa = "image-build", role = "roles/artifactregistry.writer" }
  }
  repositories = {
    images    = google_artifact_registry_repository.images
    pipelines = google_artifact_registry_repository.pipelines
    functions = google_artifact_registry_repository.functions
  }
}

resource "google_service_account" "sa" {
  for_each = local.service_accounts

  account_id   = "${var.name_prefix}-${each.key}"
  display_name = "${var.name_prefix}: ${each.value}"
  project      = var.project_id

  depends_on = [google_project_service.apis]
}

resource "google_project_iam_custom_role" "roles" {
  for_each = local.custom_roles

  # role_id allows letters, digits, underscores and dots only.
  role_id     = "${replace(var.name_prefix, "-", "_")}_${each.key}"
  title       = each.value.title
  description = each.value.description
  permissions = each.value.permissions
  stage       = "GA"

  # Custom roles are created through the IAM API, enabled by main.tf (and by
  # `make gcp-bootstrap` before the first apply): without this, Terraform may create them
  # in parallel with the API's enablement and fail with SERVICE_DISABLED.
  depends_on = [google_project_service.apis]
}

resource "google_project_iam_member" "sa" {
  for_each = local.project_bindings

  project = var.project_id
  role    = startswith(each.value.role, "custom:") ? google_project_iam_custom_role.roles[trimprefix(each.value.role, "custom:")].name : each.value.role
  member  = google_service_account.sa[each.value.sa].member
}

# The functions' build reads its source where Cloud Functions puts it: Google copies the
# storage_source object (our main bucket) into its own bucket gcf-v2-sources-<project
# number>-<region> (functions/docs/building, "Cloud Storage is used in your project to store
# the function source") and the build, as the functions-build account, fetches it from there.
# Without read access there every build fails with "failed to Fetch: failed to download
# archive gs://gcf-v2-sources-<n>-<region>/...: Access to bucket ... denied. You must grant
# Storage Object Viewer permission to <build account>" - terraform-provider-google #20571
# (its cloudfunctions2_basic_builder example; Google's own Terraform example grants
# project-level object access to its build account). That bucket is Google's, created at the
# first deploy, so no bucket-level grant can name it in advance: the grant is project-level
# Storage Object Viewer (the role the error asks for; not Object Admin, which the build
# account page run/docs/configuring/services/build-service-account lists, the build writes
# its image to Artifact Registry, registry.tf), limited by an IAM condition to that one
# bucket and its objects. Cloud Storage supports resource.name in conditions, in the form
# projects/_/buckets/BUCKET and projects/_/buckets/BUCKET/objects/OBJECT
# (https://cloud.google.com/iam/docs/conditions-resource-attributes#resource-name); the
# bucket name holds our project number and region, and bucket names are global, so the
# condition matches that bucket only (an exact name or "<name>/" - a bare prefix would also
# match gcf-v2-sources-<n>-europe-west10). CMEK-protected sources live in a bucket with a
# key-hash suffix; this stack uses Google's default encryption.
locals {
  functions_source_bucket = "projects/_/buckets/gcf-v2-sources-${data.google_project.this.number}-${var.region}"
}

resource "google_project_iam_member" "functions_build_sources" {
  project = var.project_id
  role    = "roles/storage.objectViewer"
  member  = google_service_account.sa["functions-build"].member

  condition {
    title       = "gcf-v2-sources bucket only"
    description = "The Cloud Functions source bucket of this project and region, where the functions' build reads its source."
    expression  = "resource.name == \"${local.functions_source_bucket}\" || resource.name.startsWith(\"${local.functions_source_bucket}/\")"
  }
}

# Vertex AI runs the pipeline's jobs as the pipelines SA: whoever submits the run
# (the pipelines SA itself for nested jobs, the scheduler for the daily run) must
# be allowed to act as it. Scoped to that one service account.
resource "google_service_account_iam_member" "pipelines_act_as" {
  for_each = toset(["pipelines", "scheduler"])

  service_account_id = google_service_account.sa["pipelines"].name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.sa[each.key].member
}

resource "google_storage_bucket_iam_member" "sa" {
  for_each = local.bucket_grants

  bucket = google_storage_bucket.buckets[each.value.bucket].name
  role   = each.value.role
  member = google_service_account.sa[each.value.sa].member
}

resource "google_artifact_registry_repository_iam_member" "sa" {
  for_each = local.repository_grants

  project    = var.project_id
  location   = local.repositories[each.value.repository].location
  repository = local.repositories[each.value.repository].name
  role       = each.value.role
  member     = google_service_account.sa[each.value.sa].member
}

# Engineers run the smoke test as the smoke account (potability/gcp/smoke.py): they may mint
# its ID tokens (`gcloud auth print-identity-token --impersonate-service-account=...
# --audiences=...`), which needs iam.serviceAccounts.getOpenIdToken on the account - the role
# Service Account OpenID Connect Identity Token Creator, on this account only
# (https://cloud.google.com/iam/docs/service-account-permissions#token-creator-role).
resource "google_service_account_iam_member" "engineers_smoke_tokens" {
  for_each = toset(var.engineers)

  service_account_id = google_service_account.sa["smoke"].name
  role               = "roles/iam.serviceAccountOpenIdTokenCreator"
  member             = each.value
}

# IAM propagation. A grant is accepted at once but takes effect within seconds to minutes
# ("typically within 2 minutes, but can take 7 minutes or more":
# https://cloud.google.com/iam/docs/access-change-propagation); the first function build,
# reading its source as the new build account, fails if it starts first. Google's own
# example for a function with a build account (cloudfunctions2_basic_builder, provider docs
# r/cloudfunctions2_function; its acceptance test is provider #20571) waits 60 s with
# time_sleep between the grants and the function: so do we, before the functions and the
# Cloud Run jobs, which run as accounts granted here. It waits again whenever the set of
# grants changes (triggers), e.g. at the apply that pins the image and adds the jobs' grants.
# A build that still fails with "Access to bucket ... denied" was faster than IAM: run
# `terraform apply` again (terraform/README.md "First apply").
resource "time_sleep" "iam_propagation" {
  create_duration = var.iam_propagation_wait

  triggers = {
    grants = sha256(jsonencode(sort(concat(
      keys(local.project_bindings), keys(local.bucket_grants), keys(local.repository_grants),
      ["functions_build_sources"], local.model_job_grant_keys,
    ))))
  }

  depends_on = [
    google_project_iam_member.sa,
    google_project_iam_member.functions_build_sources,
    google_storage_bucket_iam_member.sa,
    google_artifact_registry_repository_iam_member.sa,
    google_service_account_iam_member.pipelines_act_as,
    google_project_iam_member.model_job,
    google_storage_bucket_iam_member.model_job,
    google_secret_manager_secret_iam_member.model_job,
  ]
}
