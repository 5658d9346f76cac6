"""The OpenAPI 3.1 document of the functions, generated from the code that enforces it.

Feature properties come from :func:`potability.features.json_schema_for_reading`, limits from
:class:`~potability.config.Settings` defaults and patterns from :mod:`functions.validation`,
so the published document cannot drift from what the functions accept (a test regenerates it
and compares with ``functions/openapi.yaml``; the fuzz tests are driven by it).

    python -m functions.openapi > functions/openapi.yaml
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from functions.validation import ID_PATTERN, SENSOR_PATTERN, TEXT_MAX
from potability.config import Settings
from potability.features import FEATURE_NAMES, TARGET, json_schema_for_reading

DOCUMENT_PATH = Path(__file__).with_name("openapi.yaml")


def _error_response(description: str, retry: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if retry:
        response["headers"] = {
            "Retry-After": {
                "description": "Seconds to wait before retrying.",
                "schema": {"type": "integer"},
            }
        }
    return response


def _sample_schema() -> dict[str, Any]:
    schema = copy.deepcopy(json_schema_for_reading())
    schema["description"] = (
        "One certified lab sample: the nine measurements (null = not "
        "measured), the lab's verdict and where/when it was taken."
    )
    schema["required"] = [*FEATURE_NAMES, TARGET, "sample_id", "sampled_at"]
    schema["properties"].update(
        {
            TARGET: {
                "type": "integer",
                "enum": [0, 1],
                "description": "Lab verdict: 1 potable, 0 not potable (an integer, not a boolean).",
            },
            "sample_id": {"$ref": "#/components/schemas/Id"},
            "sampled_at": {
                "type": "string",
                "format": "date-time",
                "description": "When the sample was taken: RFC 3339 with a time zone, "
                "not before 1970 and not more than 5 minutes in the future.",
            },
            "sensor_id": {
                "oneOf": [{"$ref": "#/components/schemas/SensorId"}, {"type": "null"}],
                "description": "Sensor/site the sample was taken at (quality control "
                "compares it with that sensor's inferences).",
            },
        }
    )
    return schema


def build_document(settings: Settings | None = None) -> dict[str, Any]:
    """The whole document (plain data, serialised by :func:`render`)."""
    s = settings or Settings()
    reading = json_schema_for_reading()
    reading["description"] = (
        "One reading: exactly the nine measurements, each a number in its "
        "range or null when not measured, and optionally when it was "
        "measured. Unknown fields are refused."
    )
    reading["properties"]["measured_at"] = {
        "oneOf": [{"type": "string", "format": "date-time"}, {"type": "null"}],
        "description": (
            "When the sensor measured this reading: RFC 3339 with a time zone, not "
            "before 1970 and not more than 5 minutes in the future. Absent or null: "
            "the arrival time stands in. Quality control matches lab samples to "
            "readings on it, so a batch of readings taken over an hour is matched "
            "reading by reading."
        ),
    }
    predict_request = {
        "type": "object",
        "additionalProperties": False,
        "required": ["sensor_id"],
        "properties": {
            "sensor_id": {"$ref": "#/components/schemas/SensorId"},
            "request_id": {"$ref": "#/components/schemas/Id"},
            "reading": {"$ref": "#/components/schemas/Reading"},
            "readings": {
                "type": "array",
                "minItems": 1,
                "maxItems": s.predict_max_readings,
                "items": {"$ref": "#/components/schemas/Reading"},
            },
        },
        "oneOf": [{"required": ["reading"]}, {"required": ["readings"]}],
        "description": (
            "A single reading (`reading`) or a batch (`readings`, at most "
            f"{s.predict_max_readings}). `request_id` (or the Idempotency-Key "
            "header; if both are sent they must be equal) makes retries safe: "
            "the key is recognised for the idempotency window "
            f"({s.inference_request_key_days:g} days, INFERENCE_REQUEST_KEY_DAYS) and "
            "is scoped to the caller."
        ),
    }
    prediction = {
        "type": "object",
        "required": ["reading_index", "potable", "probability", "model_version", "request_id"],
        "properties": {
            "reading_index": {"type": "integer", "minimum": 0},
            "potable": {
                "type": "integer",
                "enum": [0, 1],
                "description": (
                    "1 when `probability` reaches the model's decision "
                    "threshold, chosen in training for the highest "
                    "precision at a recall of at least the recall floor "
                    "(default 0.20); so 1 can mean a probability well "
                    "below 0.9 and 0 one above 0.5."
                ),
            },
            "probability": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "description": (
                    "Calibrated probability that the sample is potable: among "
                    "readings given p = 0.7, about 70% are potable (checked by "
                    "cross-validation; sigmoid or isotonic calibration fitted on "
                    "training folds only, reliability diagram and Brier score in "
                    "MLflow). An estimate from nine measurements, not a lab "
                    "result."
                ),
            },
            "model_version": {"type": "string"},
            "request_id": {"type": "string"},
        },
    }
    samples_batch = {
        "type": "object",
        "additionalProperties": False,
        "required": ["samples"],
        "properties": {
            "samples": {
                "type": "array",
                "minItems": 1,
                "maxItems": s.samples_max_batch,
                "items": {"$ref": "#/components/schemas/Sample"},
            }
        },
    }
    samples_result = {
        "type": "object",
        "required": ["message", "recorded", "already_recorded", "samples"],
        "properties": {
            "message": {"type": "string", "enum": ["recorded", "already recorded"]},
            "recorded": {"type": "integer", "minimum": 0},
            "already_recorded": {"type": "integer", "minimum": 0},
            "submitted_by": {"type": "string"},
            "samples": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["sample_id", "status"],
                    "properties": {
                        "sample_id": {"type": "string"},
                        "status": {"type": "string", "enum": ["recorded", "already recorded"]},
                    },
                },
            },
        },
    }
    common_errors = {
        "400": _error_response("Invalid input; `field` names what is wrong. Nothing written."),
        "405": _error_response("Wrong method (use POST)."),
        "413": _error_response("Body or batch too large."),
        "415": _error_response("Content-Type is not application/json."),
        "503": _error_response(
            "A dependency is down; nothing written. Retry after Retry-After.", retry=True
        ),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Water potability functions",
            "version": "1.0.0",
            "description": (
                "HTTP Cloud Functions (2nd gen). Each operation is its own function with its own "
                "base URL (locally: PREDICT_URL and ADD_SAMPLE_URL in `potability env`; on GCP: "
                "the Terraform outputs). A function answers on any path, so POST to the base URL "
                "or to the path shown here. Every response carries `X-Request-Id`."
            ),
        },
        "servers": [
            {
                "url": "http://127.0.0.1:{port}",
                "description": "a local function",
                "variables": {"port": {"default": "8081"}},
            }
        ],
        "paths": {
            "/predict": {
                "post": {
                    "operationId": "predict",
                    "summary": "Potability of one reading or a batch, each inference logged.",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "schema": {"$ref": "#/components/schemas/Id"},
                            "description": (
                                "Client request id: a retry with the same key returns the "
                                "logged answer (header Idempotent-Replayed: true) instead of a "
                                "second inference. Keys are scoped to the caller and recognised "
                                "for the idempotency window, "
                                f"{s.inference_request_key_days:g} days after the first request "
                                "(INFERENCE_REQUEST_KEY_DAYS), whichever day the retry arrives; "
                                "after it the key is forgotten and the same key is a new "
                                "request. A request's readings are logged all or nothing."
                            ),
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/PredictRequest"}
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "One prediction per reading, already logged.",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/PredictResponse"}
                                }
                            },
                        },
                        **common_errors,
                        "401": _error_response(
                            "Caller binding configured (GCP: always) and no "
                            "valid ID token or sensor token."
                        ),
                        "403": _error_response(
                            "The caller may not write this sensor_id, or is "
                            "bound to no sensor (docs/security.md)."
                        ),
                        "409": _error_response(
                            "The request id was used (by this caller, within "
                            "the idempotency window) for different readings; "
                            "nothing written."
                        ),
                        "502": _error_response("The model endpoint answered something unusable."),
                    },
                }
            },
            "/add_sample": {
                "post": {
                    "operationId": "add_sample",
                    "summary": "Add certified lab samples to the training table (regulators only).",
                    "security": [{"bearer": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": "#/components/schemas/Sample"},
                                        {"$ref": "#/components/schemas/SamplesBatch"},
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": {
                            "description": "All samples recorded.",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/SamplesResult"}
                                }
                            },
                        },
                        "200": {
                            "description": "Some or all samples were already recorded "
                            "(identical values); nothing written twice.",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/SamplesResult"}
                                }
                            },
                        },
                        **common_errors,
                        "401": _error_response("No bearer token."),
                        "403": _error_response("Not an authorised regulator."),
                        "409": _error_response(
                            "A sample id is already recorded with other values, "
                            "or by another submitter; nothing written."
                        ),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "Locally: a regulator token whose sha256 is listed in "
                        "SAMPLES_TOKEN_SHA256. On GCP: a Google ID token of a member of "
                        "the regulator group for the function's URL, in Authorization "
                        "(never X-Serverless-Authorization), verified by the function "
                        "itself."
                    ),
                }
            },
            "schemas": {
                "Reading": reading,
                "SensorId": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": TEXT_MAX,
                    "pattern": SENSOR_PATTERN,
                    "description": "Sensor or site id (printable text).",
                },
                "Id": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": TEXT_MAX,
                    "pattern": ID_PATTERN,
                },
                "PredictRequest": predict_request,
                "Prediction": prediction,
                "PredictResponse": {
                    "type": "object",
                    "required": ["request_id", "sensor_id", "model_name", "predictions"],
                    "properties": {
                        "request_id": {"type": "string"},
                        "sensor_id": {"type": "string"},
                        "model_name": {"type": "string"},
                        "predictions": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Prediction"},
                        },
                    },
                },
                "Sample": _sample_schema(),
                "SamplesBatch": samples_batch,
                "SamplesResult": samples_result,
                "Error": {
                    "type": "object",
                    "description": "RFC 9457 problem details; `error` and `field` are kept "
                    "for clients of the former format.",
                    "required": ["type", "title", "status", "detail", "errors", "error", "field"],
                    "properties": {
                        "type": {"type": "string", "description": "`about:blank`."},
                        "title": {"type": "string", "description": "The status's phrase."},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "instance": {"type": "string", "description": "The request's path."},
                        "errors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["detail", "field"],
                                "properties": {
                                    "detail": {"type": "string"},
                                    "field": {"type": "string"},
                                    "pointer": {
                                        "type": "string",
                                        "description": "RFC 6901 pointer into the request "
                                        "body (absent for a header or a dependency).",
                                    },
                                },
                            },
                        },
                        "error": {"type": "string", "description": "= `detail`."},
                        "field": {
                            "type": "string",
                            "description": "What is wrong, e.g. readings[3].ph, body, "
                            "Authorization, database, endpoint.",
                        },
                        "request_id": {"type": "string"},
                    },
                },
            },
        },
    }


def render(document: dict[str, Any] | None = None) -> str:
    import yaml

    header = (
        "# Generated by `python -m functions.openapi > functions/openapi.yaml` from the code\n"
        "# that enforces it (potability/features.py, functions/validation.py). Do not edit.\n"
    )

    class NoAliases(yaml.SafeDumper):
        """Shared sub-documents written out each time: PyYAML's anchors (``&id001``) are valid
        YAML, but tools and readers of an OpenAPI document expect plain objects."""

        def ignore_aliases(self, data: Any) -> bool:
            return True

    return header + yaml.dump(
        document or build_document(),
        Dumper=NoAliases,
        sort_keys=False,
        allow_unicode=False,
        width=100,
    )


if __name__ == "__main__":
    print(render(), end="")
