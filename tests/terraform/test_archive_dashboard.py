"""The archive's BigQuery table and the operators' dashboard, as Terraform renders them, checked
against Google's API descriptions (bigquery v2, monitoring v1 discovery documents).

Terraform renders the configuration offline (tests/rendered_terraform.py); the test rebuilds
the request bodies the provider sends from the rendered attributes and validates them:

- the table: ``tables.insert``'s ``Table`` with its ``externalDataConfiguration`` (the provider
  maps each argument to the API field of the same name in camelCase, a one-element block to an
  object - hashicorp/terraform-provider-google, resource_bigquery_table.go); plus the prose
  rules of the fields we depend on (one ``*`` after the bucket, CUSTOM's ``{key:TYPE}`` right
  after the prefix), and that the archive's own object names fall under both;
- the readers: the provider's dataset IAM resources patch the dataset's ``access`` list, a
  ``group:`` member becoming ``groupByEmail`` (iam_bigquery_dataset.go, iamMemberToAccess);
- the dashboard: ``dashboard_json`` is the monitoring v1 ``Dashboard`` resource, so every field
  name and enum value must exist there (a misspelt field fails, shown below).
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

import gcp_discovery
import pytest
import rendered_terraform

from potability.inference import archive as inference_archive
from potability.inference import archive_query

OPERATORS = "ops@example.com"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return rendered_terraform.render(
        tmp_path_factory.mktemp("render"),
        {
            "table": "google_bigquery_table.archive",
            "dataset": "google_bigquery_dataset.archive",
            "readers": "[for m in google_bigquery_dataset_iam_member.archive_readers : "
            "{ member = m.member, role = m.role, dataset = m.dataset_id }]",
            "job_users": "[for m in google_project_iam_member.archive_query_jobs : m.member]",
            "bucket_readers": "[for m in google_storage_bucket_iam_member.archive_readers : "
            "{ member = m.member, role = m.role, bucket = m.bucket }]",
            "archive_uri": "local.inference_archive_uri",
            "dashboard": "google_monitoring_dashboard.operations.dashboard_json",
            "functions": "{ for k, f in google_cloudfunctions2_function.fn : k => f.name }",
            "endpoint": "google_vertex_ai_endpoint.main.name",
            "alert_metrics": "{ for k, m in google_logging_metric.alert : k => m.name }",
        },
        {"operators": OPERATORS, "archive_regulator_access": True},
    )


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def api_body(block: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """The provider's expansion of ``keys`` of a rendered block: camelCase names, a one-element
    nested block as an object."""
    body: dict[str, Any] = {}
    for key in keys:
        value = block[key]
        if isinstance(value, list) and value and isinstance(value[0], dict):
            value = api_body(value[0], [k for k, v in value[0].items() if v is not None])
        body[_camel(key)] = value
    return body


def table_body(rendered: dict[str, Any]) -> dict[str, Any]:
    table = rendered["table"]
    (config,) = table["external_data_configuration"]
    return {
        "tableReference": {
            "projectId": rendered_terraform.PROJECT,
            "datasetId": table["dataset_id"],
            "tableId": table["table_id"],
        },
        "description": table["description"],
        "labels": table["labels"],
        "externalDataConfiguration": api_body(
            config, ["source_format", "autodetect", "source_uris", "hive_partitioning_options"]
        ),
    }


def test_the_table_is_a_bigquery_table_google_accepts(rendered: dict[str, Any]) -> None:
    body = table_body(rendered)
    gcp_discovery.validate_request("bigquery", "v2", "bigquery.tables.insert", body)
    assert body["externalDataConfiguration"] == {
        "sourceFormat": "PARQUET",
        "autodetect": True,
        "sourceUris": [f"{rendered['archive_uri']}/day=*"],
        "hivePartitioningOptions": {
            "mode": "CUSTOM",
            "sourceUriPrefix": f"{rendered['archive_uri']}/{{day:DATE}}",
            "requirePartitionFilter": True,
        },
    }
    # the name the documented queries use, locally and here
    assert f"{body['tableReference']['datasetId']}.{body['tableReference']['tableId']}" == (
        archive_query.TABLE
    )
    dataset = rendered["dataset"]
    assert dataset["location"] == rendered_terraform.REGION
    gcp_discovery.validate_request(
        "bigquery",
        "v2",
        "bigquery.datasets.insert",
        {
            "datasetReference": {
                "projectId": rendered_terraform.PROJECT,
                "datasetId": dataset["dataset_id"],
            },
            "location": dataset["location"],
            "description": dataset["description"],
            "labels": dataset["labels"],
        },
    )


def test_the_table_reads_the_layout_the_archive_writes(rendered: dict[str, Any]) -> None:
    """The prose of the fields (checked still to say so) against the archive's object names."""
    doc = gcp_discovery.document("bigquery", "v2")["schemas"]
    uris = doc["ExternalDataConfiguration"]["properties"]["sourceUris"]["description"]
    assert "Each URI can contain one '*' wildcard character and it must come after the" in uris
    prefix = doc["HivePartitioningOptions"]["properties"]["sourceUriPrefix"]["description"]
    assert "CUSTOM detection requires encoding the partitioning schema immediately" in prefix
    assert "The prefix must end immediately before the partition key encoding begins" in prefix
    formats = doc["ExternalDataConfiguration"]["properties"]["sourceFormat"]["description"]
    assert '"PARQUET"' in formats

    config = table_body(rendered)["externalDataConfiguration"]
    (uri,) = config["sourceUris"]
    assert uri.count("*") == 1 and uri.endswith("*")
    assert uri.startswith("gs://test-project-potability-archive/")  # after the bucket
    hive = config["hivePartitioningOptions"]
    common, key = hive["sourceUriPrefix"].rsplit("/", 1)
    assert key == f"{{{archive_query.PARTITION}:DATE}}"
    # Every day the maintenance job writes is under both: gs://BUCKET/PREFIX/day=YYYY-MM-DD/...
    for day in (date(2026, 1, 1), date(2031, 12, 31)):
        obj = f"{rendered['archive_uri']}/{inference_archive.object_name(day)}"
        assert obj.startswith(uri[:-1])
        assert re.fullmatch(
            re.escape(common) + r"/day=\d{4}-\d{2}-\d{2}/" + inference_archive.FILE_NAME, obj
        )


def test_operators_and_the_regulator_may_query_and_nobody_else(rendered: dict[str, Any]) -> None:
    members = {f"group:{OPERATORS}", f"group:{rendered_terraform.VARIABLES['regulator_group']}"}
    assert {r["member"] for r in rendered["readers"]} == members
    assert {r["role"] for r in rendered["readers"]} == {"roles/bigquery.dataViewer"}
    assert set(rendered["job_users"]) == members
    assert {(r["member"], r["role"]) for r in rendered["bucket_readers"]} == {
        (m, "roles/storage.objectViewer") for m in members
    }
    assert {r["bucket"] for r in rendered["bucket_readers"]} == {"test-project-potability-archive"}
    # What the provider PATCHes onto the dataset for them: {"access": [...]}. The discovery
    # document marks the Dataset's datasetReference "Required." for the whole resource; a
    # patch leaves it as it is, so the check carries the dataset's own.
    access = [
        {"role": r["role"], "groupByEmail": r["member"].removeprefix("group:")}
        for r in rendered["readers"]
    ]
    reference = {"projectId": rendered_terraform.PROJECT, "datasetId": archive_query.DATASET}
    assert {r["dataset"] for r in rendered["readers"]} == {reference["datasetId"]}
    gcp_discovery.validate_request(
        "bigquery",
        "v2",
        "bigquery.datasets.patch",
        {"datasetReference": reference, "access": access},
    )


def test_the_dashboard_is_a_dashboard_google_accepts(rendered: dict[str, Any]) -> None:
    dashboard = json.loads(rendered["dashboard"])
    gcp_discovery.validate("monitoring", "v1", "Dashboard", dashboard)
    text = rendered["dashboard"]
    for name in (rendered["functions"]["predict"], rendered["functions"]["samples"]):
        assert f'resource.labels.service_name=\\"{name}\\"' in text
    for metric in (
        "run.googleapis.com/request_count",
        "run.googleapis.com/request_latencies",
        "aiplatform.googleapis.com/prediction/online/prediction_latencies",
        "aiplatform.googleapis.com/pipelinejob/duration",
    ):
        assert metric in text, metric
    assert f'resource.labels.endpoint_id=\\"{rendered["endpoint"]}\\"' in text
    for event in ("live_precision_flagged", "feature_drift", "pipeline_run_failed"):
        assert f"logging.googleapis.com/user/{rendered['alert_metrics'][event]}" in text
    reducers = re.findall(r'"crossSeriesReducer":"(REDUCE_PERCENTILE_\d+)"', text)
    assert set(reducers) == {"REDUCE_PERCENTILE_50", "REDUCE_PERCENTILE_95", "REDUCE_PERCENTILE_99"}
    tiles = dashboard["mosaicLayout"]["tiles"]
    assert all(t["xPos"] + t["width"] <= dashboard["mosaicLayout"]["columns"] for t in tiles)
    cells = {(t["xPos"], t["yPos"]) for t in tiles}
    assert len(cells) == len(tiles)  # no two tiles on the same spot


@pytest.mark.parametrize(
    ("path", "wrong", "message"),
    [
        (("mosaicLayout",), ("tiles", "tile"), "tile: unknown field of MosaicLayout"),
        (
            ("mosaicLayout", "tiles", 1, "widget", "xyChart", "dataSets", 0),
            ("plotType", "plot_type"),
            "plot_type: unknown field of DataSet",
        ),
        (
            ("mosaicLayout", "tiles", 1, "widget", "xyChart", "dataSets", 0, "timeSeriesQuery"),
            ("timeSeriesFilter", "timeseriesFilter"),
            "timeseriesFilter: unknown field",
        ),
    ],
)
def test_a_misspelt_dashboard_field_fails(
    rendered: dict[str, Any], path: tuple[Any, ...], wrong: tuple[str, str], message: str
) -> None:
    dashboard = json.loads(rendered["dashboard"])
    node = dashboard
    for step in path:
        node = node[step]
    good, bad = wrong
    node[bad] = node.pop(good)
    with pytest.raises(gcp_discovery.RequestInvalid, match=re.escape(message)):
        gcp_discovery.validate("monitoring", "v1", "Dashboard", dashboard)


def test_a_wrong_enum_value_in_the_dashboard_fails(rendered: dict[str, Any]) -> None:
    dashboard = json.loads(rendered["dashboard"])
    data_set = dashboard["mosaicLayout"]["tiles"][1]["widget"]["xyChart"]["dataSets"][0]
    data_set["timeSeriesQuery"]["timeSeriesFilter"]["aggregation"]["perSeriesAligner"] = (
        "ALIGN_PER_SECOND"
    )
    with pytest.raises(gcp_discovery.RequestInvalid, match="'ALIGN_PER_SECOND' is not one of"):
        gcp_discovery.validate("monitoring", "v1", "Dashboard", dashboard)
