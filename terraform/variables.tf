variable "project_id" {
  description = "GCP project that hosts the stack."
  type        = string
}

variable "region" {
  description = "Region for every regional resource (Cloud SQL, functions, Vertex AI, scheduler, Artifact Registry)."
  type        = string
  default     = "europe-west1"
}

variable "zone" {
  description = "Zone of the MLflow VM."
  type        = string
  default     = "europe-west1-b"
}

variable "name_prefix" {
  description = "Prefix of resource names (lowercase letters, digits, hyphens)."
  type        = string
  default     = "potability"

  validation {
    # 14 at most: service account ids are 6-30 characters and the longest is
    # "<name_prefix>-functions-build" (iam.tf; terraform/tests/inputs.tftest.hcl).
    condition     = can(regex("^[a-z][a-z0-9-]{0,12}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 2-14 lowercase letters, digits or hyphens, starting with a letter and not ending with a hyphen (\"<name_prefix>-functions-build\" must fit the 30-character service account id)."
  }
}

variable "labels" {
  description = "Labels added to every resource that supports them."
  type        = map(string)
  default     = {}
}

variable "bucket_name" {
  description = "Name of the project bucket (globally unique). Empty: <project_id>-<name_prefix>."
  type        = string
  default     = ""
}

variable "bucket_location" {
  description = "Location of the bucket. Empty: the region."
  type        = string
  default     = ""
}

# ---------------------------------------------------------------- network ----

variable "subnet_cidr" {
  description = "Primary range of the subnet used by the MLflow VM and the functions' Direct VPC egress."
  type        = string
  default     = "10.10.0.0/24"
}

variable "private_service_range_prefix_length" {
  description = "Size of the range reserved for private services access (Cloud SQL, Vertex AI peering)."
  type        = number
  default     = 20
}

# -------------------------------------------------------------- Cloud SQL ----

variable "db_name" {
  description = "Application database (schema `water` from sql/ migrations; MLflow's tables in `public`)."
  type        = string
  default     = "potability"
}

variable "db_version" {
  description = "Cloud SQL PostgreSQL major version."
  type        = string
  default     = "POSTGRES_18"
}

variable "db_tier" {
  description = "Cloud SQL machine tier."
  type        = string
  default     = "db-custom-1-3840"
}

variable "db_availability_type" {
  description = "ZONAL or REGIONAL (high availability)."
  type        = string
  default     = "ZONAL"

  validation {
    condition     = contains(["ZONAL", "REGIONAL"], var.db_availability_type)
    error_message = "db_availability_type must be ZONAL or REGIONAL."
  }
}

variable "db_deletion_protection" {
  description = "Protect the Cloud SQL instance from deletion (Terraform and API)."
  type        = bool
  default     = true
}

variable "db_admins" {
  description = "Google accounts (user emails) created as IAM database users with the cloudsqlsuperuser role: they run the migrations and grants."
  type        = list(string)
  default     = []
}

# ---------------------------------------------------------------- access ----

variable "sensor_service_accounts" {
  description = "Service-account emails of the sensors allowed to invoke the inference (predict) function."
  type        = list(string)
  default     = []
}

variable "sensor_bindings" {
  description = "Sensor service account (email) -> the sensor ids it may write through predict. An invoker without an entry here is refused (403); each account is also granted run.invoker on predict."
  type        = map(list(string))
  default     = {}

  validation {
    condition     = alltrue([for ids in values(var.sensor_bindings) : length(ids) > 0 && alltrue([for id in ids : length(id) >= 1 && length(id) <= 128])])
    error_message = "sensor_bindings: every account needs at least one sensor id of 1-128 characters."
  }
}

variable "regulator_group" {
  description = "Google group (email) of the regulator, the only principal allowed to invoke the samples (add_sample) function."
  type        = string
}

variable "engineers" {
  description = "IAM members (e.g. group:ml-eng@example.com) allowed to reach the MLflow VM through IAP TCP forwarding."
  type        = list(string)
  default     = []
}

variable "samples_token_sha256" {
  description = "Comma-separated sha256 hex digests of extra bearer tokens accepted by add_sample. Stored in Secret Manager when set."
  type        = string
  default     = ""
  sensitive   = true

  validation {
    condition     = var.samples_token_sha256 == "" || can(regex("^[0-9a-f]{64}(,[0-9a-f]{64})*$", var.samples_token_sha256))
    error_message = "samples_token_sha256 must be empty or comma-separated 64-character lowercase hex digests."
  }
}

# ----------------------------------------------------------- images, MLflow ----

variable "image_tag" {
  description = "Tag of the project image (<region>-docker.pkg.dev/<project>/<repo>/potability:<tag>) used by components and serving."
  type        = string
  default     = "latest"
}

variable "image_digest" {
  description = "Digest (sha256:...) of the project image: functions' serving image parameter, the migration job and Vertex serving use <repo>/potability@<digest>. Empty: fall back to image_tag (mutable; `make gcp-deploy` sets the digest)."
  type        = string
  default     = ""

  validation {
    condition     = var.image_digest == "" || can(regex("^sha256:[0-9a-f]{64}$", var.image_digest))
    error_message = "image_digest must be empty or sha256: followed by 64 lowercase hex digits."
  }
}

variable "mlflow_machine_type" {
  description = "Machine type of the MLflow VM."
  type        = string
  default     = "e2-small"
}

variable "mlflow_workers" {
  description = "Worker processes of `mlflow server` on the VM (--workers; MLflow's default is 4). Each worker is a full copy of the app, about 350 MB resident (4 workers measured ~1.4 GB locally): on the default e2-small (2 vCPUs, 2 GB) beside the Cloud SQL Auth Proxy and the OS, 4 would leave almost nothing and risk the OOM killer; 2 use ~0.7 GB and match the 2 vCPUs for the load there is (one daily pipeline run, a few engineers). Raise it only with mlflow_machine_type."
  type        = number
  default     = 2

  validation {
    condition     = var.mlflow_workers >= 1 && var.mlflow_workers <= 16
    error_message = "mlflow_workers: 1 to 16."
  }
}

variable "mlflow_version" {
  description = "MLflow version installed on the VM (keep in step with the client in uv.lock)."
  type        = string
  default     = "3.17.2"
}

variable "cloud_sql_proxy_version" {
  description = "Cloud SQL Auth Proxy version run on the MLflow VM (change cloud_sql_proxy_sha256 with it)."
  type        = string
  default     = "2.18.0"
}

variable "cloud_sql_proxy_sha256" {
  description = "sha256 of cloud-sql-proxy.linux.amd64 of cloud_sql_proxy_version, from the proxy's release notes; the VM refuses a download that does not match."
  type        = string
  # v2.18.0 release notes (table "sha256 hash", cloud-sql-proxy.linux.amd64).
  default = "e48f49397a69a1b509a74ce025dcf76019da0dcaae17f744c524dd19e9824800"

  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.cloud_sql_proxy_sha256))
    error_message = "cloud_sql_proxy_sha256 must be 64 lowercase hex digits."
  }
}

# ------------------------------------------------------- pipeline schedule ----

variable "schedule" {
  description = "Cron schedule of the training pipeline."
  type        = string
  default     = "0 3 * * *"
}

variable "schedule_time_zone" {
  description = "Time zone of the schedule."
  type        = string
  default     = "Etc/UTC"
}

variable "recall_floor" {
  description = "Minimum recall on the potable class a model needs to be deployed."
  type        = number
  default     = 0.2
}

variable "test_fraction" {
  description = "Held-out test fraction."
  type        = number
  default     = 0.2
}

variable "split_seed" {
  description = "Seed of the train/test split."
  type        = number
  default     = 42
}

variable "cv_folds" {
  description = "Cross-validation folds."
  type        = number
  default     = 5
}

variable "grids" {
  description = "Name of the hyper-parameter grid set."
  type        = string
  default     = "default"
}

variable "model_name" {
  description = "Registered model name (MLflow and Vertex AI)."
  type        = string
  default     = "water-potability"
}

# --------------------------------------------------------------- functions ----

variable "function_runtime" {
  description = "Cloud Functions runtime."
  type        = string
  default     = "python311"
}

variable "function_max_instances" {
  description = "Upper bound of instances per function."
  type        = number
  default     = 5
}

# --- endpoint sizing (serving cost, issue 12; see terraform/README.md "What apply costs") ----------------

variable "endpoint_machine_type" {
  description = "Machine type of each Vertex endpoint replica (n1-standard-2: 2 vCPU)."
  type        = string
  default     = "n1-standard-2"
}

variable "endpoint_min_replicas" {
  description = "Replicas always running (billed around the clock; Vertex endpoints do not scale to zero)."
  type        = number
  default     = 1
  validation {
    condition     = var.endpoint_min_replicas >= 1 && floor(var.endpoint_min_replicas) == var.endpoint_min_replicas
    error_message = "endpoint_min_replicas must be a whole number >= 1."
  }
}

variable "endpoint_max_replicas" {
  description = "Upper bound of autoscaling (caps cost under a traffic burst)."
  type        = number
  default     = 3
  validation {
    condition     = var.endpoint_max_replicas >= 1 && floor(var.endpoint_max_replicas) == var.endpoint_max_replicas
    error_message = "endpoint_max_replicas must be a whole number >= 1."
  }
}

variable "endpoint_cpu_target" {
  description = "Autoscaling target: average CPU utilisation (percent) Vertex keeps replicas near."
  type        = number
  default     = 60
  validation {
    condition     = var.endpoint_cpu_target >= 1 && var.endpoint_cpu_target <= 100
    error_message = "endpoint_cpu_target must be a percentage between 1 and 100."
  }
}

# ------------------------------------------- GCP path (issue 9, Terraform) ----

variable "pipelines_subnet_cidr" {
  description = "Subnet of the network attachment: the Private Service Connect interfaces of Vertex AI pipeline jobs get their addresses here (the only source allowed to reach MLflow besides IAP)."
  type        = string
  default     = "10.10.8.0/24"
}

variable "bucket_force_destroy" {
  description = "Let `terraform destroy` delete the buckets with their objects (teardown; README.md)."
  type        = bool
  default     = false
}

# ------------------------------------------------------- inference log ----
# (terraform/maintenance.tf; docs/inference-log.md)

variable "inference_retention_days" {
  description = "Days of readings Cloud SQL keeps; older days are archived to Parquet in the archive bucket (verified), then dropped. docs/inference-log.md says why 90."
  type        = number
  default     = 90

  validation {
    condition     = var.inference_retention_days >= 14 && floor(var.inference_retention_days) == var.inference_retention_days
    error_message = "inference_retention_days must be a whole number of days, at least 14 (the status page and drift read 7 days, request keys live 7)."
  }
}

variable "inference_archive_prefix" {
  description = "Object prefix of the inference-log archive in the archive bucket (gs://<bucket>-archive/<prefix>/day=YYYY-MM-DD/...)."
  type        = string
  default     = "inference-log"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9._/-]*[a-z0-9]$", var.inference_archive_prefix))
    error_message = "inference_archive_prefix: lower-case letters, digits, '.', '_', '-', '/', no leading or trailing '/'."
  }
}

variable "archive_dataset" {
  description = "BigQuery dataset of the archive's external table (archive.tf): <archive_dataset>.water_inferences. The documented queries (docs/archive.md) name water_archive, as `potability archive query` does locally."
  type        = string
  default     = "water_archive"

  validation {
    condition     = can(regex("^[A-Za-z_][A-Za-z0-9_]*$", var.archive_dataset)) && length(var.archive_dataset) <= 1024
    error_message = "archive_dataset: letters, digits and underscores (a BigQuery dataset id)."
  }
}

variable "archive_regulator_access" {
  description = "Also let var.regulator_group query the archive table (BigQuery Data Viewer on the dataset, Job User, Object Viewer on the archive bucket). The operators group always may."
  type        = bool
  default     = false
}

variable "maintenance_schedule" {
  description = "Cron schedule (in schedule_time_zone) of the inference log's maintenance job: partitions ahead, request keys, retention, and the hour's rollups and drift cells that `potability qc` reads (hourly, so qc never fills a day of cells itself)."
  type        = string
  default     = "30 * * * *"
}

variable "artifact_retention_days" {
  description = "Untagged images and noncurrent object versions older than this are deleted."
  type        = number
  default     = 30
}

# ------------------------------------------------------------------ alerts ----
# (terraform/monitoring.tf; who is told of what: docs/alerts.md)

variable "alert_emails" {
  description = "E-mail addresses told of every alert (operators, the regulator's contact). At least one."
  type        = list(string)

  validation {
    condition     = length(var.alert_emails) > 0 && alltrue([for e in var.alert_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", e))])
    error_message = "alert_emails needs at least one e-mail address, each of the form name@domain."
  }
}

variable "alert_webhook_url" {
  description = "Optional HTTPS webhook also told of every alert (a webhook_tokenauth notification channel); empty: none."
  type        = string
  default     = ""
  sensitive   = true

  validation {
    condition     = var.alert_webhook_url == "" || startswith(var.alert_webhook_url, "https://")
    error_message = "alert_webhook_url must be an https:// URL (or empty)."
  }
}

variable "alert_runbook_url" {
  description = "Where each alert's documentation links for what to do (docs/alerts.md)."
  type        = string
  default     = "https://github.com/potability/potability/blob/main/docs/alerts.md"
}

variable "alert_auto_close_hours" {
  description = "Hours after which an incident with no new matching log line closes by itself."
  type        = number
  default     = 72
}

# --- model selection and promotion (issue 11) ---

variable "promotion_false_rate" {
  description = "Largest share of quarters (90 days) in which a challenger no better than the champion may be promoted: each look tests at 1 - this / the quarter's looks (docs/statistics.md)."
  type        = number
  default     = 0.05
  validation {
    condition     = var.promotion_false_rate > 0 && var.promotion_false_rate < 1
    error_message = "promotion_false_rate must be in (0, 1)."
  }
}

variable "promotion_look_days" {
  description = "Days between promotion tests (looks); the daily runs in between keep the champion untested."
  type        = number
  default     = 7
  validation {
    condition     = var.promotion_look_days >= 1 && floor(var.promotion_look_days) == var.promotion_look_days
    error_message = "promotion_look_days must be a whole number >= 1."
  }
}

# --- operators in control of the model (issue 22, docs/operating-the-model.md) ---

variable "promotion_approval" {
  description = "auto: a challenger that passes the evidence test is promoted at once; manual: it waits as a candidate for `potability model approve VERSION --reason ...`."
  type        = string
  default     = "auto"
  validation {
    condition     = contains(["auto", "manual"], var.promotion_approval)
    error_message = "promotion_approval must be \"auto\" or \"manual\"."
  }
}

variable "candidate_expiry_days" {
  description = "A candidate waiting for approval longer than this many days expires (manual approval mode)."
  type        = number
  default     = 7
  validation {
    condition     = var.candidate_expiry_days > 0
    error_message = "candidate_expiry_days must be > 0."
  }
}

variable "operators" {
  description = "IAM group of the operators who run `potability model rollback|hold|release|approve|reject` with their own gcloud credentials, e.g. \"ops@example.com\" (empty: nobody is granted)."
  type        = string
  default     = ""
  validation {
    condition     = var.operators == "" || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.operators))
    error_message = "operators must be a group e-mail address (or empty)."
  }
}

variable "public_status_page" {
  description = "Grant allUsers run.invoker on the status function (the public status page). An organisation enforcing constraints/iam.allowedPolicyMemberDomains refuses allUsers at apply: set false, or ask the org admin for an exception on this project (terraform/README.md \"Organisation policy\")."
  type        = bool
  default     = true
}

variable "iam_propagation_wait" {
  description = "How long the apply waits after IAM grants before the functions and the Cloud Run jobs that use them (time_sleep.iam_propagation; Google's cloudfunctions2_basic_builder example waits 60s)."
  type        = string
  default     = "60s"
}

variable "jobs_subnet_cidr" {
  description = "Subnet of the operators' Cloud Run job (Direct VPC egress; model_job.tf), the one range besides the pipelines' that may reach MLflow. Google asks for at least a /26 for Direct VPC egress."
  type        = string
  default     = "10.10.9.0/26"
}
