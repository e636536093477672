//! The OpenAPI 3.1 document served at `/openapi.json`, written by hand next to the routes
//! (`routes::ROUTES` lists the same paths; a test checks that they agree).

use serde_json::{json, Map, Value};

fn error_responses(codes: &[&str]) -> Value {
    let descriptions = |c: &str| {
        match c {
        "400" => "The body is not valid JSON, or the query is malformed.",
        "401" => "Missing or wrong bearer token.",
        "403" => "The route is disabled: no token was configured for it.",
        "404" => "Unknown request id.",
        "408" => "The request took longer than the server's time limit.",
        "409" => "Downgrade refused: the image's model version is lower than the served one's (retry with `force=true` to roll back on purpose).",
        "413" => "The body is larger than the server's limit.",
        "415" => "The body is not `application/json`.",
        "422" => "The body parses but is not acceptable (wrong types, unknown fields, bad values, a refused image).",
        "503" => "No model is loaded for this task.",
        _ => "Error.",
    }
    };
    let mut m = serde_json::Map::new();
    for c in codes {
        m.insert(
            c.to_string(),
            json!({
                "description": descriptions(c),
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
            }),
        );
    }
    Value::Object(m)
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

fn json_body(schema: &str) -> Value {
    json!({
        "required": true,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
    })
}

fn ok_json(description: &str, schema: &str) -> Value {
    json!({"200": {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
    }})
}

/// The document.
pub fn document() -> Value {
    let json_errors = ["400", "408", "413", "415", "422", "503"];
    let mut paths = Map::new();
    paths.insert("/v1/predict".into(), json!({"post": {
                "summary": "Classify a text",
                "operationId": "predict",
                "requestBody": json_body("PredictRequest"),
                "responses": merge(ok_json("The predicted label with every class's probability.", "PredictResponse"), error_responses(&json_errors))
            }}));
    paths.insert("/v1/generate".into(), json!({"post": {
                "summary": "Generate tokens greedily after a prompt",
                "operationId": "generate",
                "requestBody": json_body("GenerateRequest"),
                "responses": merge(ok_json("The generated tokens (and text, when the server has a tokenizer).", "GenerateResponse"), error_responses(&json_errors))
            }}));
    paths.insert("/v1/feedback".into(), json!({"post": {
                "summary": "Correct or rate an earlier answer",
                "operationId": "feedback",
                "security": [{"bearer": []}],
                "requestBody": json_body("FeedbackRequest"),
                "responses": merge(ok_json("Recorded in the store.", "FeedbackResponse"), error_responses(&["400", "401", "403", "404", "408", "413", "415", "422"]))
            }}));
    paths.insert("/v1/telemetry".into(), json!({"post": {
                "summary": "Ingest COBS-framed device telemetry",
                "description": "The body is a stream of telemetry frames as devices write them (postcard, COBS, CRC; `runtime/TELEMETRY.md`). Corrupt frames are skipped and counted; frames already seen (same device, boot, sequence number) are dropped.",
                "operationId": "telemetry",
                "security": [{"bearer": []}],
                "requestBody": {"required": true, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                "responses": merge(ok_json("Frames accepted.", "TelemetryResponse"), error_responses(&["401", "403", "408", "413", "422"]))
            }}));
    paths.insert(
        "/healthz".into(),
        json!({"get": {
            "summary": "Liveness and the models being served",
            "operationId": "healthz",
            "responses": ok_json("The server is up.", "Health")
        }}),
    );
    paths.insert("/metrics".into(), json!({"get": {
                "summary": "Prometheus metrics",
                "description": "Text exposition format 0.0.4: request counts by route and status, latency histograms, predictions by label, feedback, swaps, store counters, and the drift gauge `edgeloop_drift_psi` (PSI of the predicted-class window against the image's reference histogram; 0 with a comment line when the image has none).",
                "operationId": "metrics",
                "responses": {"200": {"description": "Metrics.", "content": {"text/plain": {"schema": {"type": "string"}}}}}
            }}));
    paths.insert("/admin/model".into(), json!({"post": {
                "summary": "Hot-swap a model image",
                "description": "Requests already running finish on the old model; later ones use the new one. The image must parse and validate, fit the served task (inputs, outputs, labels, tokenizer), and, when the server has a public key, carry a valid Ed25519 signature by it. Downgrade protection: an image whose header model version is lower than the served model's is refused with 409 unless `force=true`.",
                "operationId": "swapModel",
                "security": [{"bearer": []}],
                "parameters": [
                    {"name": "task", "in": "query", "required": true, "schema": {"type": "string", "enum": ["classify", "generate"]}},
                    {"name": "force", "in": "query", "required": false, "description": "Install an image with a lower model version than the served one (a deliberate rollback).", "schema": {"type": "boolean", "default": false}}
                ],
                "requestBody": {"required": true, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                "responses": merge(ok_json("Swapped.", "SwapResponse"), error_responses(&["400", "401", "403", "408", "409", "413", "422"]))
            }}));
    paths.insert("/admin/flush".into(), json!({"post": {
                "summary": "Write buffered records to the store now",
                "operationId": "flush",
                "security": [{"bearer": []}],
                "responses": merge(ok_json("Written.", "FlushResponse"), error_responses(&["401", "403", "408"]))
            }}));
    paths.insert("/openapi.json".into(), json!({"get": {
                "summary": "This API's OpenAPI document",
                "operationId": "openapi",
                "responses": {"200": {"description": "This document.", "content": {"application/json": {"schema": {"type": "object"}}}}}
            }}));
    let mut schemas = Map::new();
    schemas.insert("Error".into(), json!({"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}));
    schemas.insert("ModelInfo".into(), json!({"type": "object", "required": ["name", "version", "signed", "verified"], "properties": {
                    "name": {"type": "string"}, "version": {"type": "integer"},
                    "signed": {"type": "boolean", "description": "The image has a signature trailer."},
                    "verified": {"type": "boolean", "description": "The signature was checked against the server's public key."}
                }}));
    schemas.insert(
        "PredictRequest".into(),
        json!({"type": "object", "additionalProperties": false,
        "description": "Exactly one of `text` (needs a tokenizer) and `tokens`.",
        "properties": {
            "text": {"type": "string", "minLength": 1},
            "tokens": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1}
        }}),
    );
    schemas.insert("PredictResponse".into(), json!({"type": "object", "required": ["request_id", "label", "class", "confidence", "scores", "tokens", "truncated", "model", "inference_us", "latency_ms"], "properties": {
                    "request_id": {"type": "string", "description": "Refer to this answer in /v1/feedback."},
                    "label": {"type": "string"},
                    "class": {"type": "integer"},
                    "confidence": {"type": "number"},
                    "scores": {"type": "array", "items": {"type": "object", "required": ["label", "score"], "properties": {"label": {"type": "string"}, "score": {"type": "number"}}}},
                    "tokens": {"type": "integer", "description": "Token ids used (the input is padded or truncated to the model's length)."},
                    "truncated": {"type": "boolean"},
                    "model": {"$ref": "#/components/schemas/ModelInfo"},
                    "inference_us": {"type": "number", "description": "Time inside the model."},
                    "latency_ms": {"type": "number", "description": "Time in the handler."}
                }}));
    schemas.insert(
        "GenerateRequest".into(),
        json!({"type": "object", "additionalProperties": false,
        "description": "Exactly one of `prompt` (needs a tokenizer) and `tokens`.",
        "properties": {
            "prompt": {"type": "string", "minLength": 1},
            "tokens": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1},
            "max_tokens": {"type": "integer", "minimum": 0, "default": 16}
        }}),
    );
    schemas.insert("GenerateResponse".into(), json!({"type": "object", "required": ["request_id", "tokens", "text", "stop", "prompt_tokens", "model", "inference_us", "latency_ms"], "properties": {
                    "request_id": {"type": "string"},
                    "tokens": {"type": "array", "items": {"type": "integer"}},
                    "text": {"type": ["string", "null"]},
                    "stop": {"type": "string", "enum": ["max_tokens", "end_of_text", "context_full"]},
                    "prompt_tokens": {"type": "integer"},
                    "model": {"$ref": "#/components/schemas/ModelInfo"},
                    "inference_us": {"type": "number"},
                    "latency_ms": {"type": "number"}
                }}));
    schemas.insert("FeedbackRequest".into(), json!({"type": "object", "additionalProperties": false, "required": ["request_id"],
                    "description": "At least one of `correction` and `preference`.",
                    "properties": {
                        "request_id": {"type": "string"},
                        "correction": {"oneOf": [{"type": "string", "description": "Classification: the label name. Generation: the right response's text."}, {"type": "integer", "minimum": 0, "description": "Classification: the class index."}, {"type": "array", "items": {"type": "integer", "minimum": 0}, "description": "Generation: the right response's token ids."}]},
                        "preference": {"type": "string", "enum": ["up", "down"]}
                    }}));
    schemas.insert("FeedbackResponse".into(), json!({"type": "object", "required": ["request_id", "recorded", "feedback_seq"], "properties": {
                    "request_id": {"type": "string"}, "recorded": {"type": "boolean"}, "feedback_seq": {"type": "integer"}
                }}));
    schemas.insert("TelemetryResponse".into(), json!({"type": "object", "required": ["frames", "duplicates", "corrupt"], "properties": {
                    "frames": {"type": "integer"}, "duplicates": {"type": "integer"}, "corrupt": {"type": "integer"}
                }}));
    schemas.insert(
        "SwapResponse".into(),
        json!({"type": "object", "required": ["task", "model", "previous"], "properties": {
            "task": {"type": "string", "enum": ["classify", "generate"]},
            "model": {"$ref": "#/components/schemas/ModelInfo"},
            "previous": {"oneOf": [{"$ref": "#/components/schemas/ModelInfo"}, {"type": "null"}]}
        }}),
    );
    schemas.insert(
        "FlushResponse".into(),
        json!({"type": "object", "required": ["written", "store"], "properties": {
            "written": {"type": "integer"}, "store": {"type": "string"}
        }}),
    );
    schemas.insert("Health".into(), json!({"type": "object", "required": ["status", "uptime_s", "classifier", "generator", "signature_required"], "properties": {
                    "status": {"type": "string", "enum": ["ok"]},
                    "uptime_s": {"type": "number"},
                    "classifier": {"type": ["object", "null"]},
                    "generator": {"type": ["object", "null"]},
                    "signature_required": {"type": "boolean"}
                }}));
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "edgeloop serve",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Self-hosted inference over edgeloop model images: classification, greedy generation, feedback and device telemetry into the monitor's Parquet store, Prometheus metrics with live drift, and signed hot-swap of images. Every error is a JSON object `{\"error\": \"...\"}`."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_lists_exactly_the_routes() {
        let doc = document();
        let paths = doc["paths"].as_object().unwrap();
        assert_eq!(paths.len(), super::super::routes::ROUTES.len());
        for (method, path, summary) in super::super::routes::ROUTES {
            let op = &paths[path][method.to_ascii_lowercase()];
            assert!(op.is_object(), "{method} {path} missing");
            assert_eq!(op["summary"], summary);
        }
        // Every schema reference resolves.
        let text = doc.to_string();
        for part in text.split("#/components/schemas/").skip(1) {
            let name: String = part.chars().take_while(|c| c.is_alphanumeric()).collect();
            assert!(
                doc["components"]["schemas"][&name].is_object(),
                "dangling $ref {name}"
            );
        }
    }
}
