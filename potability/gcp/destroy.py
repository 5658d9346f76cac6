"""``make gcp-destroy``: tear down what ``terraform apply`` + ``make gcp-deploy`` created.

    potability gcp destroy [--dry-run] [--auto-approve]

``terraform destroy`` alone stops half-way on Google Cloud, in three places this runs around:

1. a Vertex AI endpoint with deployed models cannot be deleted: every deployed model is undeployed
   first (``gcloud ai endpoints undeploy-model``);
2. Cloud SQL is deletion-protected (``var.db_deletion_protection``): the protection is lifted by a
   targeted apply, then the instance and everything that needs it are destroyed first;
3. the service-networking peering is abandoned by Terraform (``deletion_policy = "ABANDON"``,
   terraform/network.tf: it cannot be deleted while Cloud SQL's producer network holds the
   instance) and then blocks the VPC's deletion: it is deleted after the instance is gone
   (``gcloud services vpc-peerings delete``), then ``terraform destroy`` removes the rest. That
   deletion itself is known to fail while the producer side still holds the connection
   (hashicorp/terraform-provider-google #19908 and #18834: "Failed to delete connection;
   Producer services (e.g. CloudSQL, Cloud Memstore, etc.) are still using this connection"):
   the VPC's own end of the peering is then deleted directly (``gcloud compute networks
   peerings delete servicenetworking-googleapis-com``, the peering's name on the consumer
   network), which is what unblocks the network's deletion.

What Google makes you wait for is reported, not hidden: Direct VPC egress and the network
attachment release their subnet addresses up to hours after the functions and jobs are gone (a
subnet deletion failing with "in use" means: wait, run ``make gcp-destroy`` again - every step is
idempotent), and a Cloud SQL instance name stays reserved for days after deletion (a new stack
needs another ``name_prefix``). ``--dry-run`` (``make gcp-destroy DRY_RUN=1``) prints every command
and runs only the read-only ones. tests/potability/gcp/test_destroy.py runs it with fake tools.
"""

from __future__ import annotations

from potability.gcp.deploy import TERRAFORM_DIR, DeployError, Runner, _need, terraform_outputs

WAITS = (
    "Google releases the subnet addresses of Direct VPC egress and of the network attachment up to "
    "hours after their users are gone: if a subnet or the network attachment could not be "
    'deleted ("in use"), wait and run `make gcp-destroy` again.',
    "The Cloud SQL instance name stays reserved for several days: a new stack in this project "
    "needs another name_prefix (terraform.tfvars).",
)


def destroy(run: Runner, auto_approve: bool = False) -> None:
    out = run.out
    outputs = terraform_outputs(run)
    project, region, endpoint, network = _need(
        outputs, "project_id", "region", "endpoint_id", "network"
    )
    approve = ["-auto-approve"] if auto_approve else []
    where = [f"--project={project}", f"--region={region}"]

    out("\n== 1/4 undeploy every model from the Vertex AI endpoint")
    deployed = run(
        [
            "gcloud",
            "ai",
            "endpoints",
            "describe",
            str(endpoint),
            *where,
            "--format=value(deployedModels[].id)",
        ],
        capture=True,
        read_only=True,
    )
    for model_id in deployed.replace(";", " ").split():
        run(
            [
                "gcloud",
                "ai",
                "endpoints",
                "undeploy-model",
                str(endpoint),
                *where,
                f"--deployed-model-id={model_id}",
            ]
        )

    out("\n== 2/4 lift Cloud SQL's deletion protection, destroy the instance and what needs it")
    target = "-target=google_sql_database_instance.main"
    run(
        [
            "terraform",
            f"-chdir={TERRAFORM_DIR}",
            "apply",
            "-input=false",
            "-var=db_deletion_protection=false",
            target,
            *approve,
        ]
    )
    run(
        [
            "terraform",
            f"-chdir={TERRAFORM_DIR}",
            "destroy",
            "-input=false",
            "-var=db_deletion_protection=false",
            target,
            *approve,
        ]
    )

    out("\n== 3/4 delete the service-networking peering Terraform abandons (network.tf)")
    delete_peering(run, str(project), str(network))

    out("\n== 4/4 destroy everything else")
    run(
        [
            "terraform",
            f"-chdir={TERRAFORM_DIR}",
            "destroy",
            "-input=false",
            "-var=db_deletion_protection=false",
            *approve,
        ]
    )
    for line in WAITS:
        out(f"note: {line}")


PEERING = "servicenetworking-googleapis-com"
"""The name Google gives the consumer network's end of the service-networking peering."""


def delete_peering(run: Runner, project: str, network: str) -> None:
    """Delete the private services peering: through Service Networking first, and if that is
    refused (provider #19908, #18834: the producer network still holds the connection), the
    VPC's own end of it with ``gcloud compute networks peerings delete``. If both fail the
    second failure stops the teardown (DeployError), as any step does."""
    try:
        run(
            [
                "gcloud",
                "services",
                "vpc-peerings",
                "delete",
                f"--network={network}",
                "--service=servicenetworking.googleapis.com",
                f"--project={project}",
                "--quiet",
            ]
        )
    except DeployError as exc:
        run.out(
            f"note: {exc}\nService Networking kept the connection (terraform-provider-google "
            f"#19908, #18834); deleting the network's end of the peering ({PEERING}) instead"
        )
        run(
            [
                "gcloud",
                "compute",
                "networks",
                "peerings",
                "delete",
                PEERING,
                f"--network={network}",
                f"--project={project}",
                "--quiet",
            ]
        )
