# VPC for the MLflow VM, Cloud SQL's private IP (private services access), the
# functions' and the migration job's Direct VPC egress, and the Private Service
# Connect interfaces of Vertex AI pipeline jobs (network attachment below).
resource "google_compute_network" "vpc" {
  name                    = "${var.name_prefix}-vpc"
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"

  depends_on = [google_project_service.apis]
}

resource "google_compute_subnetwork" "main" {
  name                     = "${var.name_prefix}-${var.region}"
  region                   = var.region
  network                  = google_compute_network.vpc.id
  ip_cidr_range            = var.subnet_cidr
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_5_SEC"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# Private services access: Cloud SQL (private IP only) and Vertex AI peering.
resource "google_compute_global_address" "private_services" {
  name          = "${var.name_prefix}-private-services"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  prefix_length = var.private_service_range_prefix_length
  network       = google_compute_network.vpc.id
}

resource "google_service_networking_connection" "private_services" {
  network                 = google_compute_network.vpc.id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.private_services.name]
  # Teardown: the peering cannot be deleted while Cloud SQL's producer network still
  # holds resources (it is released with the instance); ABANDON removes it from the
  # state instead of failing `terraform destroy` (provider docs
  # r/service_networking_connection, "deletion_policy").
  deletion_policy = "ABANDON"
}

# The network path of the pipeline (README.md "Network path"): each Vertex AI
# pipeline job gets a Private Service Connect interface with an address from this
# subnet (PipelineJob.pscInterfaceConfig.networkAttachment, pipeline.tf). Unlike
# VPC peering, traffic from a PSC interface is routed like traffic from the VPC
# itself, so it reaches MLflow (same VPC) and Cloud SQL's private IP (in the
# producer network peered to this VPC) - Google: vertex-ai/docs/general/psc-interfaces,
# vertex-ai/docs/pipelines/configure-private-service-connect.
resource "google_compute_subnetwork" "pipelines" {
  name                     = "${var.name_prefix}-pipelines-${var.region}"
  region                   = var.region
  network                  = google_compute_network.vpc.id
  ip_cidr_range            = var.pipelines_subnet_cidr
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_5_SEC"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# The operators' Cloud Run job (model_job.tf) egresses here, not into the main subnet: the
# MLflow firewall admits this range, and the functions' range must stay out of it. Direct VPC
# egress takes its addresses from the subnet; Google asks for at least a /26
# (https://cloud.google.com/run/docs/configuring/vpc-direct-vpc, "IP address allocation").
resource "google_compute_subnetwork" "jobs" {
  name                     = "${var.name_prefix}-jobs-${var.region}"
  region                   = var.region
  network                  = google_compute_network.vpc.id
  ip_cidr_range            = var.jobs_subnet_cidr
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_5_SEC"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_network_attachment" "pipelines" {
  name        = "${var.name_prefix}-pipelines"
  region      = var.region
  description = "Private Service Connect interfaces of the Vertex AI pipeline jobs."
  # The attachment lives in this project and only this project's Vertex AI jobs
  # name it (pscInterfaceConfig must reference an attachment of the job's own project).
  # Subnetworks by self link, as in the provider's example (r/compute_network_attachment).
  connection_preference = "ACCEPT_AUTOMATIC"
  subnetworks           = [google_compute_subnetwork.pipelines.self_link]
}

# Outbound internet for the VM without a public IP (pip, Cloud SQL Auth Proxy download).
resource "google_compute_router" "main" {
  name    = "${var.name_prefix}-router"
  region  = var.region
  network = google_compute_network.vpc.id
}

resource "google_compute_router_nat" "main" {
  name                               = "${var.name_prefix}-nat"
  router                             = google_compute_router.main.name
  region                             = var.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

locals {
  # Google's IAP TCP forwarding range.
  iap_range = "35.235.240.0/20"
}

# Engineers: IAP TCP forwarding to the MLflow UI only (no SSH: migrations are a
# Cloud Run job, migrate.tf; nobody needs a shell on the VM).
resource "google_compute_firewall" "iap_to_mlflow" {
  name          = "${var.name_prefix}-allow-iap-mlflow"
  network       = google_compute_network.vpc.id
  direction     = "INGRESS"
  source_ranges = [local.iap_range]
  target_tags   = ["mlflow"]

  allow {
    protocol = "tcp"
    ports    = ["5000"]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

# Only the pipeline's jobs (their PSC interfaces in the attachment subnet) and the operators'
# `potability model` job (the jobs subnet) reach MLflow; the functions' Direct VPC egress (main subnet) and the private services
# range do not (ingress is denied unless a rule allows it).
resource "google_compute_firewall" "internal_to_mlflow" {
  name          = "${var.name_prefix}-allow-pipelines-mlflow"
  network       = google_compute_network.vpc.id
  direction     = "INGRESS"
  source_ranges = [google_compute_subnetwork.pipelines.ip_cidr_range, google_compute_subnetwork.jobs.ip_cidr_range]
  target_tags   = ["mlflow"]

  allow {
    protocol = "tcp"
    ports    = ["5000"]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}
