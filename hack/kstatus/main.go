// Command kstatus prints what sigs.k8s.io/cli-utils' kstatus (the library Flux's
// kustomize-controller uses for `wait: true` and health checks) computes for objects.
//
// It reads one JSON object, or a List of them (`kubectl get -o json`), on stdin and
// writes one JSON line per object: {"kind", "namespace", "name", "status", "message"}.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Message   string `json:"message"`
}

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kstatus: reading stdin: %v\n", err)
		os.Exit(2)
	}
	// apimachinery's decoder keeps integers int64, as unstructured accessors expect.
	var doc map[string]interface{}
	if err := utiljson.Unmarshal(data, &doc); err != nil {
		fmt.Fprintf(os.Stderr, "kstatus: stdin is not a JSON object: %v\n", err)
		os.Exit(2)
	}
	objects := []map[string]interface{}{doc}
	if items, ok := doc["items"].([]interface{}); ok {
		objects = objects[:0]
		for i, item := range items {
			obj, ok := item.(map[string]interface{})
			if !ok {
				fmt.Fprintf(os.Stderr, "kstatus: items[%d] is not an object\n", i)
				os.Exit(2)
			}
			objects = append(objects, obj)
		}
	}
	out := json.NewEncoder(os.Stdout)
	for _, obj := range objects {
		u := &unstructured.Unstructured{Object: obj}
		res, err := status.Compute(u)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kstatus: %s %s/%s: %v\n", u.GetKind(), u.GetNamespace(), u.GetName(), err)
			os.Exit(1)
		}
		_ = out.Encode(verdict{u.GetKind(), u.GetNamespace(), u.GetName(), res.Status.String(), res.Message})
	}
}
