terraform {
  # 1.11: write-only arguments (secret_data_wo, secrets.tf) need it.
  required_version = ">= 1.11"

  required_providers {
    # Pinned to the 8.7 series: tools/terraform_schema/google-8.7.0.schema.json,
    # which the offline checks validate against, is generated from 8.7.0.
    google = {
      source  = "hashicorp/google"
      version = "~> 8.7.0"
    }
    # Zips the function source (data "archive_file" in functions.tf).
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.8.0"
    }
    # time_sleep: waits for IAM propagation where Google's own examples wait (iam.tf).
    # Pinned to the 0.14 series: tools/terraform_schema/time-0.14.2.schema.json.
    time = {
      source  = "hashicorp/time"
      version = "~> 0.14.0"
    }
  }

  # Remote state: copy backend.tf.example to backend.tf (see README.md).
}

provider "google" {
  project = var.project_id
  region  = var.region
  zone    = var.zone

  # Every resource that takes labels gets these (plus its own).
  default_labels = local.labels
}
