// Package lambdaio adapts Lambda events to Helix's transports: API Gateway HTTP API (payload
// v2) events to a net/http handler, through aws-lambda-go-api-proxy.
package lambdaio

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/aws/aws-lambda-go/events"
	"github.com/awslabs/aws-lambda-go-api-proxy/core"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/helixhq/helix/shared/auth"
	"github.com/helixhq/helix/shared/fault"
	"github.com/helixhq/helix/shared/httpapi"
)

// HTTPHandler returns the Lambda handler for an HTTP API. The claims API Gateway's JWT authorizer
// verified travel on the request context (auth.GatewayClaims), so the handler trusts them instead
// of verifying the token again.
func HTTPHandler(h http.Handler, log *slog.Logger) func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	adapter := httpadapter.NewV2(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rc, ok := core.GetAPIGatewayV2ContextFromContext(r.Context()); ok {
			ctx := httpapi.WithGatewayRequestID(r.Context(), rc.RequestID)
			if rc.Authorizer != nil && rc.Authorizer.JWT != nil && len(rc.Authorizer.JWT.Claims) > 0 {
				ctx = auth.WithGatewayClaims(ctx, rc.Authorizer.JWT.Claims)
			}
			r = r.WithContext(ctx)
		}
		h.ServeHTTP(w, r)
	}))
	return func(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		resp, err := adapter.ProxyWithContext(ctx, ev)
		if err != nil {
			// The event could not become a request (say, a body that is not valid base64).
			// Answer in Helix's error format rather than failing the invocation, which API
			// Gateway would turn into a bare 500.
			log.Error("cannot adapt API Gateway event", "err", err, "request_id", ev.RequestContext.RequestID)
			body, _ := json.Marshal(map[string]any{"error": map[string]any{
				"code": fault.MalformedEvent, "message": "the request could not be read",
			}})
			return events.APIGatewayV2HTTPResponse{
				StatusCode: httpapi.StatusOf(fault.MalformedEvent),
				Headers:    map[string]string{"Content-Type": "application/json"},
				Body:       string(body),
			}, nil
		}
		return resp, nil
	}
}
