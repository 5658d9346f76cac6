# Variable handling: extra add_sample tokens go through Secret Manager, bad
# digests are rejected before anything is planned.

mock_provider "google" {}
mock_provider "archive" {}
mock_provider "time" {}

variables {
  project_id      = "test-project"
  regulator_group = "regulator@example.com"
  alert_emails    = ["ops@example.com"]
}

run "no_sensors_means_nobody_invokes_predict" {
  command = apply

  assert {
    condition     = [for k, m in google_cloud_run_service_iam_member.invoker : k if startswith(k, "predict/")] == ["predict/smoke"]
    error_message = "predict has no invoker but the smoke-test account unless sensors are listed."
  }
}

run "extra_sample_tokens_live_in_secret_manager" {
  command = apply

  variables {
    samples_token_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
  }

  assert {
    condition = (
      google_secret_manager_secret_version.samples_token_sha256[0].secret_data == null &&
      google_secret_manager_secret_version.samples_token_sha256[0].secret_data_wo_version == tostring(parseint(substr(sha256(var.samples_token_sha256), 0, 8), 16))
    )
    error_message = "The digests go to Secret Manager write-only (secret_data_wo, not in the state); a new value gets a new version number."
  }
  assert {
    condition     = google_cloudfunctions2_function.fn["samples"].service_config[0].environment_variables["SAMPLES_TOKEN_SECRET"] == google_secret_manager_secret.samples_token_sha256[0].id && length(google_cloudfunctions2_function.fn["samples"].service_config[0].secret_environment_variables) == 0
    error_message = "add_sample re-reads the digests from the secret (SAMPLES_TOKEN_SECRET, every 30 s), not from a value mounted once at start."
  }
  assert {
    condition     = !contains(keys(google_cloudfunctions2_function.fn["samples"].service_config[0].environment_variables), "SAMPLES_TOKEN_SHA256")
    error_message = "The digests are not also in a plain environment variable."
  }
  assert {
    condition     = google_secret_manager_secret_iam_member.samples_token_sha256[0].member == google_service_account.sa["samples"].member
    error_message = "Only the samples SA can read the secret."
  }
}

run "bad_token_digest_is_rejected" {
  command = plan

  variables {
    samples_token_sha256 = "not-a-digest"
  }

  expect_failures = [var.samples_token_sha256]
}

run "without_a_digest_the_image_is_the_tag_and_there_is_no_migration_job" {
  command = plan

  variables {
    image_tag = "v7"
  }

  assert {
    condition     = jsondecode(base64decode(google_cloud_scheduler_job.training.http_target[0].body)).runtimeConfig.parameterValues.serving_image == "europe-west1-docker.pkg.dev/test-project/potability/potability:v7"
    error_message = "Without image_digest the image falls back to the tag."
  }
  assert {
    condition     = length(google_cloud_run_v2_job.migrate) == 0 && output.migration_job == ""
    error_message = "The migration job waits for an image pinned by digest (make gcp-deploy)."
  }
  assert {
    condition     = length(google_cloud_run_v2_job.maintenance) == 0 && length(google_cloud_scheduler_job.maintenance) == 0
    error_message = "The maintenance job and its schedule wait for the image too."
  }
}

run "a_retention_shorter_than_the_windows_that_read_it_is_rejected" {
  command = plan

  variables {
    inference_retention_days = 7
  }

  expect_failures = [var.inference_retention_days]
}

run "an_archive_prefix_with_a_leading_slash_is_rejected" {
  command = plan

  variables {
    inference_archive_prefix = "/inference-log"
  }

  expect_failures = [var.inference_archive_prefix]
}

run "bad_image_digest_is_rejected" {
  command = plan

  variables {
    image_digest = "latest"
  }

  expect_failures = [var.image_digest]
}

run "sensor_bindings_grant_invoker_and_reach_predict" {
  command = apply

  variables {
    sensor_bindings = { "plant-a@example.iam.gserviceaccount.com" = ["plant-1", "plant-2"] }
  }

  assert {
    condition     = jsondecode(google_cloudfunctions2_function.fn["predict"].service_config[0].environment_variables["PREDICT_SENSOR_BINDINGS"]) == { "plant-a@example.iam.gserviceaccount.com" = ["plant-1", "plant-2"], (google_service_account.sa["smoke"].email) = ["smoke-deploy"] }
    error_message = "predict binds each sensor account to its sensor ids (PREDICT_SENSOR_BINDINGS), and the smoke-test account to smoke-deploy."
  }
  assert {
    condition     = google_cloud_run_service_iam_member.invoker["predict/plant-a@example.iam.gserviceaccount.com"].member == "serviceAccount:plant-a@example.iam.gserviceaccount.com"
    error_message = "A bound sensor account may invoke predict."
  }
  assert {
    condition     = length(split(",", google_cloudfunctions2_function.fn["samples"].service_config[0].environment_variables["SAMPLES_ID_TOKEN_AUDIENCE"])) == 2
    error_message = "add_sample verifies ID tokens against its own two URLs."
  }
}
# name_prefix: every service account id is "<name_prefix>-<key>" and must fit 30 characters
# (IAM: account ids are 6-30 characters); the longest key is functions-build.
run "the_longest_name_prefix_still_fits_every_service_account_id" {
  command = plan

  variables {
    name_prefix = "abcdefghij-klm"
  }

  assert {
    condition     = alltrue([for sa in google_service_account.sa : length(sa.account_id) <= 30])
    error_message = "Every service account id fits 30 characters with a 14-character prefix."
  }
}

run "a_name_prefix_too_long_for_an_account_id_is_rejected" {
  command = plan

  variables {
    name_prefix = "abcdefghij-klmn"
  }

  expect_failures = [var.name_prefix]
}
