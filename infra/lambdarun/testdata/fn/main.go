// Command fn is a Lambda function for lambdarun's tests, built with aws-lambda-go as Helix's
// functions are. FN_INIT picks what its cold start does: "" starts normally (with
// lambda.WithEnableSIGTERM), "exit" fails and exits, "initerror" reports an init error to the
// Runtime API and waits. An event {"do": ...} picks what an invocation does: "echo" (the
// default) answers with what the function sees, "fail" returns an error, "panic" panics,
// "sleep" overruns any deadline, "big" answers more than 6 MB.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type event struct {
	Do string `json:"do"`
}

type answer struct {
	RequestID   string            `json:"request_id"`
	FunctionARN string            `json:"function_arn"`
	Deadline    int64             `json:"deadline_ms"`
	TraceID     string            `json:"trace_id"`
	Env         map[string]string `json:"env"`
}

func main() {
	switch os.Getenv("FN_INIT") {
	case "exit":
		fmt.Fprintln(os.Stderr, "fn: cold start failed: FN_INIT=exit")
		os.Exit(3)
	case "initerror":
		body := `{"errorType":"Init.Config","errorMessage":"fn: bad configuration"}`
		url := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime/init/error"
		resp, err := http.Post(url, "application/json", strings.NewReader(body))
		if err == nil {
			resp.Body.Close()
		}
		select {}
	}
	fmt.Println(`{"msg":"cold start"}`)
	lambda.StartWithOptions(handle, lambda.WithEnableSIGTERM(func() { fmt.Println(`{"msg":"sigterm: pool closed"}`) }))
}

func handle(ctx context.Context, ev event) (any, error) {
	fmt.Printf(`{"msg":"invoked","do":%q}`+"\n", ev.Do)
	switch ev.Do {
	case "fail":
		return nil, errors.New("fn: asked to fail")
	case "panic":
		panic("fn: asked to panic")
	case "sleep":
		<-time.After(time.Hour)
		return nil, nil
	case "big":
		return map[string]string{"pad": string(bytes.Repeat([]byte("x"), 7<<20))}, nil
	}
	lc, _ := lambdacontext.FromContext(ctx)
	deadline, _ := ctx.Deadline()
	a := answer{RequestID: lc.AwsRequestID, FunctionARN: lc.InvokedFunctionArn, Deadline: deadline.UnixMilli(),
		TraceID: os.Getenv("_X_AMZN_TRACE_ID"), Env: map[string]string{}}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "FN_") || k == "LAMBDA_TASK_ROOT" {
			a.Env[k] = v
		}
	}
	raw, err := json.Marshal(a)
	return json.RawMessage(raw), err
}
