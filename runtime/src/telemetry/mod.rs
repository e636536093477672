//! Field telemetry recorded on the device (issue 9). Not implemented yet.
