package migrations

// ApplyFS exposes apply to the tests, which run older sets of migrations.
var ApplyFS = apply
