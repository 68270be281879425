package httpapi

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// Every error code the API can answer is listed in the README with its status, so a client
// author can handle each one.
func TestREADMEListsEveryErrorCode(t *testing.T) {
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(strings.Fields(string(readme)), " ") // line breaks fall anywhere
	for code, status := range Codes() {
		if want := fmt.Sprintf("`%s` (%d", code, status); !strings.Contains(text, want) {
			t.Errorf("README.md does not list %s", want+")")
		}
	}
}
