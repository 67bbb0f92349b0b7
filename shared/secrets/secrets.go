// Package secrets resolves configuration values that point at AWS secret stores, once per cold
// start, so secrets live in SSM Parameter Store or Secrets Manager rather than in plain Lambda
// environment variables or the template:
//
//	ssm:/helix/prod/jwt-secret           an SSM parameter, decrypted (SecureString)
//	secretsmanager:helix/prod/db         a Secrets Manager secret's string
//	secretsmanager:helix/prod/db#url     one field of a secret that holds a JSON object
//
// Any other value is used as it is.
package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

const (
	ssmPrefix = "ssm:"
	smPrefix  = "secretsmanager:"
)

// IsReference reports whether v names a secret rather than being one.
func IsReference(v string) bool {
	return strings.HasPrefix(v, ssmPrefix) || strings.HasPrefix(v, smPrefix)
}

// SSM is the part of the SSM client the resolver uses.
type SSM interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, opts ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

// SecretsManager is the part of the Secrets Manager client the resolver uses.
type SecretsManager interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Resolver reads secret references.
type Resolver struct {
	SSM            SSM
	SecretsManager SecretsManager

	// read keeps each Secrets Manager secret this resolver fetched: the database's user and
	// password are two fields of one secret, read once.
	mu   sync.Mutex
	read map[string]string
}

// NewAWSResolver builds a resolver from the default AWS configuration (the Lambda role).
func NewAWSResolver(ctx context.Context) (*Resolver, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("aws config: %w", err)
	}
	return &Resolver{SSM: ssm.NewFromConfig(cfg), SecretsManager: secretsmanager.NewFromConfig(cfg)}, nil
}

// Resolve returns the secret v refers to, or v itself when it is not a reference. Errors name
// the reference, never a secret value.
func (r *Resolver) Resolve(ctx context.Context, v string) (string, error) {
	switch {
	case strings.HasPrefix(v, ssmPrefix):
		name := strings.TrimPrefix(v, ssmPrefix)
		out, err := r.SSM.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
		if err != nil {
			return "", fmt.Errorf("read SSM parameter %s: %w", name, err)
		}
		if out.Parameter == nil || out.Parameter.Value == nil {
			return "", fmt.Errorf("SSM parameter %s has no value", name)
		}
		return *out.Parameter.Value, nil
	case strings.HasPrefix(v, smPrefix):
		id, field, hasField := strings.Cut(strings.TrimPrefix(v, smPrefix), "#")
		secret, err := r.secret(ctx, id)
		if err != nil {
			return "", err
		}
		if !hasField {
			return secret, nil
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal([]byte(secret), &fields); err != nil {
			return "", fmt.Errorf("secret %s is not a JSON object, so it has no field %q", id, field)
		}
		val, ok := fields[field]
		if !ok {
			return "", fmt.Errorf("secret %s has no field %q", id, field)
		}
		var str string
		if json.Unmarshal(val, &str) == nil {
			return str, nil
		}
		// A number, boolean or object: its JSON text, exactly as stored (no float formatting).
		return string(val), nil
	}
	return v, nil
}

// secret reads a Secrets Manager secret's string, once per resolver.
func (r *Resolver) secret(ctx context.Context, id string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.read[id]; ok {
		return s, nil
	}
	out, err := r.SecretsManager.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
	if err != nil {
		return "", fmt.Errorf("read secret %s: %w", id, err)
	}
	if out.SecretString == nil {
		return "", fmt.Errorf("secret %s has no string value", id)
	}
	if r.read == nil {
		r.read = map[string]string{}
	}
	r.read[id] = *out.SecretString
	return *out.SecretString, nil
}

// ResolveAll replaces each reference among values with its secret. The AWS clients are only
// built (by newResolver) when at least one value is a reference, so local runs need no AWS setup.
func ResolveAll(ctx context.Context, newResolver func(context.Context) (*Resolver, error), values ...*string) error {
	var r *Resolver
	var errs []error
	for _, v := range values {
		if !IsReference(*v) {
			continue
		}
		if r == nil {
			var err error
			if r, err = newResolver(ctx); err != nil {
				return err
			}
		}
		s, err := r.Resolve(ctx, *v)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		*v = s
	}
	return errors.Join(errs...)
}
