# Vertex AI's service agent on the network attachment (service_agents.tf) and the build
# accounts (build.tf, iam.tf), with mocked providers. Google: vertex-ai/docs/general/
# vpc-psc-i-setup (the agent needs compute.networkAttachments.get/update and
# compute.regionOperations.get); run/docs/configuring/services/build-service-account.

mock_provider "google" {
  override_data {
    target = data.google_project.this
    values = { number = "123456789012" }
    # the number is known while planning, as it is against Google
    override_during = plan
  }
}
mock_provider "archive" {}
mock_provider "time" {}

variables {
  project_id      = "test-project"
  regulator_group = "regulator@example.com"
  alert_emails    = ["ops@example.com"]
  engineers       = ["group:ml-eng@example.com"]
}

run "before_gcp_deploy_the_agent_is_granted_nothing_yet" {
  command = plan

  assert {
    condition     = length(google_project_iam_member.vertex_psc_interface) == 0
    error_message = "The grant waits for make gcp-deploy, which ensures the agent exists first."
  }
}

run "the_vertex_agent_holds_exactly_the_psc_interface_permissions" {
  command = apply

  variables {
    image_digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  }

  assert {
    condition     = google_project_iam_member.vertex_psc_interface[0].member == "serviceAccount:service-123456789012@gcp-sa-aiplatform.iam.gserviceaccount.com"
    error_message = "The grant names Vertex AI's service agent of this project (by project number)."
  }
  assert {
    condition     = google_project_iam_custom_role.vertex_psc_interface.permissions == toset(["compute.networkAttachments.get", "compute.networkAttachments.update", "compute.regionOperations.get"])
    error_message = "Exactly the three permissions Google's PSC-interface page names - not networkAdmin."
  }
  assert {
    condition     = google_project_iam_member.vertex_psc_interface[0].role == google_project_iam_custom_role.vertex_psc_interface.name
    error_message = "The agent gets the custom role, nothing predefined."
  }
}

run "the_image_build_runs_as_its_own_account" {
  command = plan

  assert {
    condition     = google_service_account.sa["image-build"].account_id == "potability-image-build"
    error_message = "A dedicated Cloud Build account for the project image."
  }
  assert {
    condition     = [for m in google_service_account_iam_member.engineers_act_as_image_build : m.member] == ["group:ml-eng@example.com"] && alltrue([for m in google_service_account_iam_member.engineers_act_as_image_build : m.role == "roles/iam.serviceAccountUser"])
    error_message = "Engineers (who run make gcp-deploy) may act as the build account, nobody else."
  }
  assert {
    condition     = output.build_source_staging_dir == "gs://test-project-potability/cloudbuild/source"
    error_message = "The source is staged in the main bucket, which the build account reads."
  }
}
