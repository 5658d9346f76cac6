# The PipelineJob the schedule submits: compiled template, pipeline root, the
# pipelines SA, the network attachment (PSC interface), and the runtime parameters (names are the
# pipeline's, see pipelines/). Also an output, for manual runs.
locals {
  pipeline_parameters = {
    recall_floor  = var.recall_floor
    test_fraction = var.test_fraction
    split_seed    = var.split_seed
    cv_folds      = var.cv_folds
    grids         = var.grids
    # promotion looks (issue 31): the quarter's false-promotion rate, days between looks
    promotion_false_rate = var.promotion_false_rate
    promotion_look_days  = var.promotion_look_days
    # operators' control (issue 22): auto | manual approval, candidate expiry
    promotion_approval    = var.promotion_approval
    candidate_expiry_days = var.candidate_expiry_days
    model_name            = var.model_name
    mlflow_tracking_uri   = local.mlflow_tracking_uri
    # MLflow's basic-auth password of the "pipelines" user (secrets.tf): each step reads it
    # with its own service account (components/runtime.py, potability/gcp/secret_manager.py).
    mlflow_credentials_secret = google_secret_manager_secret.mlflow["pipelines"].id
    # The database as one STRUCT parameter (components/runtime.py DATABASE_KEYS): Cloud SQL
    # through the connector as the pipelines SA's IAM user; no DSN on GCP.
    database = {
      url                = ""
      cloud_sql_instance = google_sql_database_instance.main.connection_name
      name               = google_sql_database.app.name
      user               = local.db_user["pipelines"]
    }
    deploy_target = "vertex"
    project       = var.project_id
    region        = var.region
    endpoint_id   = google_vertex_ai_endpoint.main.name
    serving_image = local.serving_image
    # endpoint sizing (issue 12): variables "endpoint_*" in variables.tf
    endpoint_machine_type = var.endpoint_machine_type
    endpoint_min_replicas = var.endpoint_min_replicas
    endpoint_max_replicas = var.endpoint_max_replicas
    endpoint_cpu_target   = var.endpoint_cpu_target
  }

  mlflow_tracking_uri = "http://${google_compute_instance.mlflow.network_interface[0].network_ip}:5000"

  pipeline_job = {
    displayName    = "${var.name_prefix}-training"
    templateUri    = local.pipeline_template_uri
    serviceAccount = google_service_account.sa["pipelines"].email
    # Network path (network.tf): a PSC interface in our VPC, not peering (which is
    # not transitive, so it could not reach Cloud SQL's private IP).
    pscInterfaceConfig = { networkAttachment = google_compute_network_attachment.pipelines.name }
    labels             = local.labels
    runtimeConfig = {
      gcsOutputDirectory = local.pipeline_root
      parameterValues    = local.pipeline_parameters
    }
  }
}
