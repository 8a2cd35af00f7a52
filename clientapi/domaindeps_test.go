package clientapi

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDomainPackagesSpeakNoHTTP keeps the layering the domain packages
// exist for: they hold the rules both APIs share, so they import neither
// HTTP nor an API package, and the client API cannot creep back into them.
func TestDomainPackagesSpeakNoHTTP(t *testing.T) {
	forbidden := []string{
		"net/http",
		"github.com/parley-im/parley/apierr",
		"github.com/parley-im/parley/clientapi",
		"github.com/parley-im/parley/federation",
		"github.com/parley-im/parley/inbox",
	}
	for _, dir := range []string{"profiles", "devices", "e2ekeys", "directory", "pushrules", "admin", "search"} {
		files, err := filepath.Glob(filepath.Join("..", dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no Go files in %s: %v", dir, err)
		}
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			f, err := parser.ParseFile(token.NewFileSet(), file, src, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range f.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				for _, bad := range forbidden {
					if path == bad {
						t.Errorf("%s imports %s; domain packages must not", file, path)
					}
				}
			}
		}
	}
}
