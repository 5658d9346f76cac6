# The inference-log archive as a table (issue 33, docs/archive.md): a BigQuery external table
# over the archive bucket's Parquet files, one file per UTC day, Hive-partitioned by day.
#
# The layout is the one the maintenance job writes (potability/inference/archive.py,
# object_name): gs://<bucket>-archive/<inference_archive_prefix>/day=YYYY-MM-DD/
# water_inferences.parquet - already Hive style, so the table reads it as it is. The source
# URI prefix ends right before the partition key ("must end immediately before the partition
# key encoding begins", HivePartitioningOptions.sourceUriPrefix, bigquery v2); CUSTOM mode
# pins the key's type in it ({day:DATE}) instead of leaving it to inference; the wildcard
# names every day's file and nothing else the prefix may hold. Queries must filter on day
# (require_partition_filter): a question pays for the days it reads, not for the whole archive
# (cloud.google.com/bigquery/docs/hive-partitioned-queries, partition pruning).
#
# The columns come from the files themselves (Parquet is self-describing; autodetect is the
# provider's required flag, the schema is potability.inference.archive.SCHEMA, stable).
#
# Who may query (cloud.google.com/bigquery/docs/query-cloud-storage-data, "Required roles"):
# BigQuery Data Viewer on the dataset, the right to run query jobs in the project (BigQuery
# Job User), and Storage Object Viewer on the bucket - an external table is read with the
# querying user's own credentials. Granted to var.operators and, if
# var.archive_regulator_access, to var.regulator_group; nobody else.
locals {
  archive_source = local.inference_archive_uri # maintenance.tf: where the job writes
  archive_readers = toset(compact([
    var.operators == "" ? "" : "group:${var.operators}",
    var.archive_regulator_access ? "group:${var.regulator_group}" : "",
  ]))
}

resource "google_bigquery_dataset" "archive" {
  #checkov:skip=CKV_GCP_81:Holds no data: an external table over the archive bucket, whose objects are Google-managed-encrypted like every bucket here (no customer key ring is provisioned).
  project     = var.project_id
  dataset_id  = var.archive_dataset
  location    = var.region
  description = "The inference log's archive as a table (docs/archive.md): external, over ${local.archive_source}."
  labels      = local.labels

  # Dropping the dataset drops the table definition only: the readings stay in the bucket.
  delete_contents_on_destroy = true

  depends_on = [google_project_service.apis]
}

resource "google_bigquery_table" "archive" {
  #checkov:skip=CKV_GCP_80:An external table stores nothing in BigQuery; the Parquet files are in the archive bucket (Google-managed encryption, as every bucket of this project).
  #checkov:skip=CKV_GCP_121:Deleting an external table deletes its definition only: the readings stay in the versioned, create-only archive bucket, and `make gcp-destroy` must not block on it.
  project     = var.project_id
  dataset_id  = google_bigquery_dataset.archive.dataset_id
  table_id    = "water_inferences"
  description = "Every archived reading of water.water_inferences, one Parquet file per UTC day (potability.inference.archive.SCHEMA, docs/archive.md); filter on day."
  labels      = local.labels
  # Deleting this definition deletes no reading (they live in the bucket).
  deletion_protection = false

  external_data_configuration {
    source_format = "PARQUET"
    autodetect    = true
    source_uris   = ["${local.archive_source}/day=*"]

    hive_partitioning_options {
      mode                     = "CUSTOM"
      source_uri_prefix        = "${local.archive_source}/{day:DATE}"
      require_partition_filter = true
    }
  }
}

resource "google_bigquery_dataset_iam_member" "archive_readers" {
  for_each = local.archive_readers

  project    = var.project_id
  dataset_id = google_bigquery_dataset.archive.dataset_id
  role       = "roles/bigquery.dataViewer"
  member     = each.value
}

resource "google_project_iam_member" "archive_query_jobs" {
  for_each = local.archive_readers

  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = each.value
}

resource "google_storage_bucket_iam_member" "archive_readers" {
  for_each = local.archive_readers

  bucket = google_storage_bucket.buckets["archive"].name
  role   = "roles/storage.objectViewer"
  member = each.value
}
