// Package kubernetes_test validates the kustomize base under deploy/kubernetes: every object of
// every resource is decoded strictly into its Kubernetes API type (k8s.io/api), and every VEXIL_*
// variable is one of the configuration table's. It is its own module so k8s.io/api stays out of
// Vexil's; .ci/run runs it.
package kubernetes_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/vexil-flags/vexil/services/platform/config"
)

// serviceMonitor is the part of the Prometheus Operator's CRD the base uses (strictly decoded).
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"endpoints"`
	} `json:"spec"`
}

type kustomization struct {
	APIVersion string           `json:"apiVersion"`
	Kind       string           `json:"kind"`
	Labels     []map[string]any `json:"labels"`
	Resources  []string         `json:"resources"`
	Images     []map[string]any `json:"images"`
	Patches    []map[string]any `json:"patches"`
}

func objectsOf(t *testing.T, dir string) [][]byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(raw, &k); err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	var docs [][]byte
	for _, r := range k.Resources {
		path := filepath.Join(dir, r)
		if st, err := os.Stat(path); err == nil && st.IsDir() {
			docs = append(docs, objectsOf(t, path)...)
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range bytes.Split(b, []byte("\n---\n")) {
			if len(bytes.TrimSpace(d)) > 0 {
				docs = append(docs, d)
			}
		}
	}
	return docs
}

// render runs kustomize (its Go library, as `kustomize build dir` would) and returns each object.
func render(t *testing.T, dir string) [][]byte {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var docs [][]byte
	for _, r := range m.Resources() {
		b, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, b)
	}
	return docs
}

func TestManifestsDecodeStrictly(t *testing.T) {
	for _, dir := range []string{"base", "overlays/production"} {
		t.Run(dir, func(t *testing.T) { checkRendered(t, dir) })
	}
}

func checkRendered(t *testing.T, dir string) {
	known := map[string]bool{}
	for _, s := range config.Settings() {
		known[s[0]] = true
	}
	_ = objectsOf(t, dir) // every kustomization and resource file decodes strictly by itself, too
	docs := render(t, dir)
	if len(docs) < 10 {
		t.Fatalf("kustomize build %s: %d objects", dir, len(docs))
	}
	deployments := map[string]*appsv1.Deployment{}
	var hpa *autoscalingv2.HorizontalPodAutoscaler
	kinds := map[string]int{}
	for _, d := range docs {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(d, &tm); err != nil {
			t.Fatal(err)
		}
		var obj any
		switch tm.Kind {
		case "Deployment":
			obj = &appsv1.Deployment{}
		case "Service":
			obj = &corev1.Service{}
		case "Secret":
			obj = &corev1.Secret{}
		case "PodDisruptionBudget":
			obj = &policyv1.PodDisruptionBudget{}
		case "HorizontalPodAutoscaler":
			obj = &autoscalingv2.HorizontalPodAutoscaler{}
		case "ServiceMonitor":
			obj = &serviceMonitor{}
		default:
			t.Fatalf("unexpected kind %q", tm.Kind)
		}
		if err := yaml.UnmarshalStrict(d, obj); err != nil {
			t.Fatalf("%s: %v\n%s", tm.Kind, err, d)
		}
		kinds[tm.Kind]++
		switch o := obj.(type) {
		case *appsv1.Deployment:
			deployments[o.Name] = o
		case *autoscalingv2.HorizontalPodAutoscaler:
			hpa = o
		}
	}
	for _, role := range config.AllRoles {
		dep := deployments["vexil-"+role]
		if dep == nil {
			t.Errorf("no Deployment of the %s role", role)
			continue
		}
		c := dep.Spec.Template.Spec.Containers[0]
		if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
			t.Errorf("%s: probes are not /healthz and /readyz", dep.Name)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s: no CPU request or memory limit", dep.Name)
		}
		if sc := dep.Spec.Template.Spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			t.Errorf("%s: may run as root", dep.Name)
		}
		var roles string
		for _, e := range c.Env {
			if strings.HasPrefix(e.Name, "VEXIL_") && !known[e.Name] {
				t.Errorf("%s: %s is not in the configuration table", dep.Name, e.Name)
			}
			if e.Name == "VEXIL_ROLES" {
				roles = e.Value
			}
			if (e.Name == "VEXIL_DATABASE_URL" || e.Name == "VEXIL_REDIS_URL") && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
				t.Errorf("%s: %s is not read from the Secret", dep.Name, e.Name)
			}
		}
		if parsed, err := config.ParseRoles(roles); err != nil || len(parsed) != 1 || parsed[0] != role {
			t.Errorf("%s: VEXIL_ROLES %q: %v", dep.Name, roles, err)
		}
	}
	if dir == "overlays/production" {
		if img := deployments["vexil-api"].Spec.Template.Spec.Containers[0].Image; img != "ghcr.io/vexil-flags/vexil:v0.1.0" {
			t.Errorf("the overlay's image was not applied: %s", img)
		}
		if hpa == nil || hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas != 3 {
			t.Error("the overlay's HPA patch was not applied")
		}
	}
	for kind, min := range map[string]int{"HorizontalPodAutoscaler": 1, "PodDisruptionBudget": 2, "Secret": 1, "ServiceMonitor": 1} {
		if kinds[kind] < min {
			t.Errorf("%d %s objects, want at least %d", kinds[kind], kind, min)
		}
	}
}
