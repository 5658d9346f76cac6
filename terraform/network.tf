# VPC for the MLflow VM, Cloud SQL's private IP (private services access) and the
# functions' Direct VPC egress. Vertex AI pipeline jobs join it through the same
# peering (the `network` of the pipeline run), which is how they reach MLflow.
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

# Engineers: IAP TCP forwarding only (MLflow UI on 5000, SSH for the SQL tunnel).
resource "google_compute_firewall" "iap_to_mlflow" {
  name          = "${var.name_prefix}-allow-iap-mlflow"
  network       = google_compute_network.vpc.id
  direction     = "INGRESS"
  source_ranges = [local.iap_range]
  target_tags   = ["mlflow"]

  allow {
    protocol = "tcp"
    ports    = ["22", "5000"]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

# The pipeline's Vertex AI jobs (peered range) and anything in the subnet reach MLflow.
resource "google_compute_firewall" "internal_to_mlflow" {
  name      = "${var.name_prefix}-allow-internal-mlflow"
  network   = google_compute_network.vpc.id
  direction = "INGRESS"
  source_ranges = [
    var.subnet_cidr,
    "${google_compute_global_address.private_services.address}/${var.private_service_range_prefix_length}",
  ]
  target_tags = ["mlflow"]

  allow {
    protocol = "tcp"
    ports    = ["5000"]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}
