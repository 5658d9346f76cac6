# MLflow tracking server: a small VM without public IP, shielded, running as its
# own service account. A startup script installs two systemd units: the Cloud
# SQL Auth Proxy (private IP, IAM authentication as the VM's service account) and
# `mlflow server` with its tables in the app database's `public` schema and the
# its own bucket as artifact store, behind MLflow's basic-auth app (users
# "admin" and "pipelines", passwords in Secret Manager, secrets.tf). Reachable on
# port 5000 only from the pipeline jobs' PSC interfaces and, for engineers, IAP
# TCP forwarding (network.tf).
resource "google_compute_instance" "mlflow" {
  #checkov:skip=CKV_GCP_38:Boot disk holds no data (state is in Cloud SQL and the bucket); Google-managed encryption is enough, no CSEK.
  name         = "${var.name_prefix}-mlflow"
  zone         = var.zone
  machine_type = var.mlflow_machine_type
  tags         = ["mlflow"]

  boot_disk {
    initialize_params {
      image = "debian-cloud/debian-12"
      size  = 20
      type  = "pd-balanced"
    }
  }

  network_interface {
    subnetwork = google_compute_subnetwork.main.id
    # No access_config block: no public IP. Egress goes through Cloud NAT.
  }

  service_account {
    email  = google_service_account.sa["mlflow"].email
    scopes = ["cloud-platform"]
  }

  shielded_instance_config {
    enable_secure_boot          = true
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  metadata = {
    enable-oslogin         = "TRUE"
    block-project-ssh-keys = "true"
    serial-port-enable     = "false"
    startup-script = templatefile("${path.module}/templates/mlflow-startup.sh.tftpl", {
      mlflow_version      = var.mlflow_version
      mlflow_workers      = var.mlflow_workers
      proxy_version       = var.cloud_sql_proxy_version
      proxy_sha256        = var.cloud_sql_proxy_sha256
      project             = var.project_id
      admin_secret        = google_secret_manager_secret.mlflow["admin"].secret_id
      pipelines_secret    = google_secret_manager_secret.mlflow["pipelines"].secret_id
      instance_connection = google_sql_database_instance.main.connection_name
      db_name             = google_sql_database.app.name
      db_user             = local.db_user["mlflow"]
      artifacts_uri       = local.mlflow_artifacts_uri
      auth_database_uri   = "postgresql+psycopg2://${replace(local.db_user["mlflow"], "@", "%%40")}@127.0.0.1:5432/${google_sql_database.app.name}"
    })
  }

  allow_stopping_for_update = true

  depends_on = [
    google_compute_router_nat.main,
    google_sql_user.sa,
    google_project_iam_member.sa,
    google_storage_bucket_iam_member.sa,
    google_secret_manager_secret_iam_member.mlflow,
  ]
}

# Engineers open IAP tunnels to the MLflow UI (port 5000; log in as admin).
resource "google_iap_tunnel_instance_iam_member" "engineers" {
  for_each = toset(var.engineers)

  project  = var.project_id
  zone     = google_compute_instance.mlflow.zone
  instance = google_compute_instance.mlflow.name
  role     = "roles/iap.tunnelResourceAccessor"
  member   = each.value
}
