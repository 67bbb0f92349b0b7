package openapi

// ToJSONForTest exposes the YAML to JSON conversion to the tests.
var ToJSONForTest = toJSON
