package procinfo

import (
	"reflect"
	"testing"

	"go.opentelemetry.io/otel/attribute"
)

func TestParseResourceAttributes(t *testing.T) {
	tests := []struct {
		in   string
		want []attribute.KeyValue
	}{
		{"", nil},
		{"  ", nil},
		{"a=b", []attribute.KeyValue{attribute.String("a", "b")}},
		{" a = b , c=d%3De ", []attribute.KeyValue{attribute.String("a", "b"), attribute.String("c", "d=e")}},
		{"a=1,a=2", []attribute.KeyValue{attribute.String("a", "2")}},
		{"novalue,=x,k=%zz,%zz=v,ok=", []attribute.KeyValue{attribute.String("ok", "")}},
		{"plus=a+b,sp=a%20b", []attribute.KeyValue{attribute.String("plus", "a+b"), attribute.String("sp", "a b")}},
		{"k%2Cx=v", []attribute.KeyValue{attribute.String("k,x", "v")}},
	}
	for _, tt := range tests {
		if got := ParseResourceAttributes(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseResourceAttributes(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestOtelIdentity(t *testing.T) {
	svc, attrs := otelIdentity([]string{"OTEL_RESOURCE_ATTRIBUTES=service.name=b,x=y", "garbage", "OTEL_SERVICE_NAME=a"})
	if svc != "a" || !reflect.DeepEqual(attrs, []attribute.KeyValue{attribute.String("x", "y")}) {
		t.Errorf("got %q %v", svc, attrs)
	}
	svc, _ = otelIdentity([]string{"OTEL_RESOURCE_ATTRIBUTES=service.name=b"})
	if svc != "b" {
		t.Errorf("got %q", svc)
	}
}
