# Cloud SQL for PostgreSQL: private IP only, encrypted connections only, IAM
# database authentication. Connections must come through a Cloud SQL connector
# (Python connector, Auth Proxy), which present client certificates. The app's schema `water` comes from sql/ migrations
# (`potability migrate`, run by the Cloud Run job in migrate.tf); MLflow creates its tables in `public`.
# No password exists: every user is an IAM database user.
resource "google_sql_database_instance" "main" {
  name                = "${var.name_prefix}-pg"
  region              = var.region
  database_version    = var.db_version
  deletion_protection = var.db_deletion_protection

  settings {
    tier                        = var.db_tier
    edition                     = "ENTERPRISE"
    availability_type           = var.db_availability_type
    disk_autoresize             = true
    deletion_protection_enabled = var.db_deletion_protection
    user_labels                 = local.labels

    ip_configuration {
      ipv4_enabled                                  = false
      private_network                               = google_compute_network.vpc.id
      allocated_ip_range                            = google_compute_global_address.private_services.name
      enable_private_path_for_google_cloud_services = true
      ssl_mode                                      = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
    }

    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
      start_time                     = "02:00"
      transaction_log_retention_days = 7

      backup_retention_settings {
        retained_backups = 14
        retention_unit   = "COUNT"
      }
    }

    maintenance_window {
      day          = 7
      hour         = 4
      update_track = "stable"
    }

    insights_config {
      query_insights_enabled = true
    }

    # Written out one by one (not a dynamic block) so that static analysis sees them.
    database_flags {
      name  = "cloudsql.iam_authentication"
      value = "on"
    }
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
    database_flags {
      name  = "pgaudit.log"
      value = "ddl,role"
    }
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_duration"
      value = "on"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
  }

  depends_on = [google_service_networking_connection.private_services]
}

resource "google_sql_database" "app" {
  name     = var.db_name
  instance = google_sql_database_instance.main.name
}

# IAM database users of the service accounts that talk to the database. The
# migrator is a cloudsqlsuperuser: `potability migrate` creates the NOLOGIN
# owner role water_owner (which owns schema water), the access roles and their
# memberships (sql/, README.md). Teardown: a user that was granted roles or
# owns objects cannot be dropped through the API, so Terraform abandons it
# (provider docs r/sql_user, "deletion_policy"); the instance takes it along.
resource "google_sql_user" "sa" {
  # model-job: the operators' `potability model` job (model_job.tf), a member of water_operators.
  for_each = toset(["pipelines", "mlflow", "predict", "samples", "status", "migrator", "model-job"])

  name            = local.db_user[each.key]
  instance        = google_sql_database_instance.main.name
  type            = "CLOUD_IAM_SERVICE_ACCOUNT"
  database_roles  = each.key == "migrator" ? ["cloudsqlsuperuser"] : null
  deletion_policy = "ABANDON"
}

# Break-glass: engineers who may connect as themselves (cloudsqlsuperuser). Not
# needed for migrations (the migration job, migrate.tf).
resource "google_sql_user" "admins" {
  for_each = toset(var.db_admins)

  name            = each.value
  instance        = google_sql_database_instance.main.name
  type            = "CLOUD_IAM_USER"
  database_roles  = ["cloudsqlsuperuser"]
  deletion_policy = "ABANDON"
}

resource "google_project_iam_member" "db_admins" {
  for_each = {
    for pair in setproduct(var.db_admins, ["roles/cloudsql.client", "roles/cloudsql.instanceUser"]) :
    "${pair[0]}/${pair[1]}" => { member = "user:${pair[0]}", role = pair[1] }
  }

  project = var.project_id
  member  = each.value.member
  role    = each.value.role
}
