package staticpod

import (
	"cmp"
	"encoding/hex"
	"hash"
	"hash/fnv"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// podUID derives the UID of a static pod the way the kubelet does
// (applyDefaults in pkg/kubelet/config/common.go): an FNV-128a hash of a
// textual dump of the decoded and defaulted pod, followed by "host:<node>"
// and "file:<path>" for a file, or by "url:<url>" for a URL.
//
// Upstream dumps its internal pod type (k8s.io/kubernetes/pkg/apis/core)
// with go-spew ("%#v", keys sorted, methods disabled; k8s.io/utils/dump
// ForHash). In v1.37 that type has the same fields, in the same order, as
// k8s.io/api/core/v1.Pod; only the package name printed in front of each
// type differs ("core.PodSpec" instead of "v1.PodSpec"). specDump writes
// the same text from the v1 pod, naming core/v1 types "core.", so the UID is
// byte-equal to the kubelet's: it changes exactly when the kubelet's does
// (the conformance module checks this against upstream).
func podUID(pod *corev1.Pod, fromFile bool, nodeName, path string) types.UID {
	h := fnv.New128a()
	specDump(h, pod)
	if fromFile {
		io.WriteString(h, "host:"+nodeName)
		io.WriteString(h, "file:"+path)
	} else {
		io.WriteString(h, "url:"+path)
	}
	return types.UID(hex.EncodeToString(h.Sum(nil)))
}

// coreV1Path is the package whose types upstream's internal API mirrors.
const coreV1Path = "k8s.io/api/core/v1"

// specDump writes v as go-spew's Sprintf("%#v") would with the kubelet's
// hashing configuration, with k8s.io/api/core/v1 types named as the
// internal "core" package. Its quirks are spew's and are kept on purpose,
// because the hash must match: strings are written unquoted, elements of
// slices and maps carry no type, a pointer seen again at a shallower depth
// is written as "<shown>", and the "no type" state leaks past a nil pointer
// element (see dumper.ptr).
func specDump(w hash.Hash, v any) {
	if v == nil {
		io.WriteString(w, "(interface {})<nil>")
		return
	}
	d := dumper{seen: map[uintptr]int{}, names: map[reflect.Type]string{}, out: make([]byte, 0, 16<<10)}
	d.value(reflect.ValueOf(v))
	w.Write(d.out)
}

type dumper struct {
	out    []byte // the dump, written to the hash at the end in one call
	depth  int
	seen   map[uintptr]int         // pointer -> depth where it was first written
	noType bool                    // spew's ignoreNextType
	names  map[reflect.Type]string // typeName cache
}

// typ writes "(name)" for t.
func (d *dumper) typ(prefix string, t reflect.Type) {
	name, ok := d.names[t]
	if !ok {
		name = typeName(t)
		d.names[t] = name
	}
	d.str("(")
	d.str(prefix)
	d.str(name)
	d.str(")")
}

func (d *dumper) str(s string) { d.out = append(d.out, s...) }

// typeName is reflect.Type.String with core/v1 named types renamed.
func typeName(t reflect.Type) string {
	if t.Name() != "" {
		if t.PkgPath() == coreV1Path {
			return "core." + t.Name()
		}
		return t.String()
	}
	switch t.Kind() {
	case reflect.Pointer:
		return "*" + typeName(t.Elem())
	case reflect.Slice:
		return "[]" + typeName(t.Elem())
	case reflect.Array:
		return "[" + strconv.Itoa(t.Len()) + "]" + typeName(t.Elem())
	case reflect.Map:
		return "map[" + typeName(t.Key()) + "]" + typeName(t.Elem())
	}
	return t.String()
}

// unpack looks through an interface, as spew's unpackValue does.
func (d *dumper) unpack(v reflect.Value) reflect.Value {
	if v.Kind() == reflect.Interface {
		d.noType = false
		if !v.IsNil() {
			v = v.Elem()
		}
	}
	return v
}

func (d *dumper) ptr(v reflect.Value) {
	if v.IsNil() && d.noType {
		d.str("<nil>")
		return
	}
	// Forget pointers recorded at this depth or deeper: only a pointer seen
	// higher up the current path counts as already shown.
	for p, depth := range d.seen {
		if depth >= d.depth {
			delete(d.seen, p)
		}
	}
	indirects, isNil, cycle := 0, false, false
	e := v
	for e.Kind() == reflect.Pointer {
		if e.IsNil() {
			isNil = true
			break
		}
		indirects++
		p := e.Pointer()
		if depth, ok := d.seen[p]; ok && depth < d.depth {
			cycle = true
			indirects--
			break
		}
		d.seen[p] = d.depth
		e = e.Elem()
		if e.Kind() == reflect.Interface {
			if e.IsNil() {
				isNil = true
				break
			}
			e = e.Elem()
		}
	}
	if !d.noType {
		d.typ(strings.Repeat("*", indirects), e.Type())
	} else {
		if isNil || cycle {
			indirects += strings.Count(typeName(e.Type()), "*")
		}
		d.str("<" + strings.Repeat("*", indirects) + ">")
	}
	switch {
	case isNil:
		d.str("<nil>")
	case cycle:
		d.str("<shown>")
	default:
		d.noType = true
		d.value(e)
	}
}

func (d *dumper) value(v reflect.Value) {
	kind := v.Kind()
	if kind == reflect.Invalid {
		d.str("<invalid>")
		return
	}
	if kind == reflect.Pointer {
		d.ptr(v)
		return
	}
	if !d.noType {
		d.typ("", v.Type())
	}
	d.noType = false

	switch kind {
	case reflect.Bool:
		d.str(strconv.FormatBool(v.Bool()))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		d.out = strconv.AppendInt(d.out, v.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		d.out = strconv.AppendUint(d.out, v.Uint(), 10)
	case reflect.Float32, reflect.Float64:
		bits := 64
		if kind == reflect.Float32 {
			bits = 32
		}
		d.str(strconv.FormatFloat(v.Float(), 'g', -1, bits))
	case reflect.Complex64, reflect.Complex128:
		bits := 64
		if kind == reflect.Complex64 {
			bits = 32
		}
		c := v.Complex()
		d.str("(" + strconv.FormatFloat(real(c), 'g', -1, bits))
		if imag(c) >= 0 {
			d.str("+")
		}
		d.str(strconv.FormatFloat(imag(c), 'g', -1, bits) + "i)")
	case reflect.Slice, reflect.Array:
		if kind == reflect.Slice && v.IsNil() {
			d.str("<nil>")
			return
		}
		d.str("[")
		d.depth++
		for i := range v.Len() {
			if i > 0 {
				d.str(" ")
			}
			d.noType = true
			d.value(d.unpack(v.Index(i)))
		}
		d.depth--
		d.str("]")
	case reflect.String:
		d.str(v.String())
	case reflect.Interface:
		if v.IsNil() {
			d.str("<nil>")
		}
	case reflect.Map:
		if v.IsNil() {
			d.str("<nil>")
			return
		}
		d.str("map[")
		d.depth++
		keys := v.MapKeys()
		sortKeys(keys)
		for i, k := range keys {
			if i > 0 {
				d.str(" ")
			}
			d.noType = true
			d.value(d.unpack(k))
			d.str(":")
			d.noType = true
			d.value(d.unpack(v.MapIndex(k)))
		}
		d.depth--
		d.str("]")
	case reflect.Struct:
		d.str("{")
		d.depth++
		t := v.Type()
		for i := range v.NumField() {
			if i > 0 {
				d.str(" ")
			}
			d.str(t.Field(i).Name)
			d.str(":")
			d.value(d.unpack(v.Field(i)))
		}
		d.depth--
		d.str("}")
	case reflect.Uintptr:
		d.hex(v.Uint())
	default:
		// UnsafePointer, Chan and Func hold addresses, which no pod field
		// does; write them as spew would.
		d.hex(uint64(v.Pointer()))
	}
}

func (d *dumper) hex(p uint64) {
	if p == 0 {
		d.str("<nil>")
		return
	}
	d.str("0x" + strconv.FormatUint(p, 16))
}

// sortKeys orders map keys as spew does for the kinds a pod's maps use
// (strings, and the numeric kinds for completeness).
func sortKeys(keys []reflect.Value) {
	slices.SortStableFunc(keys, func(a, b reflect.Value) int {
		switch a.Kind() {
		case reflect.String:
			return strings.Compare(a.String(), b.String())
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			return cmp.Compare(a.Int(), b.Int())
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			return cmp.Compare(a.Uint(), b.Uint())
		case reflect.Bool:
			return cmp.Compare(boolInt(a.Bool()), boolInt(b.Bool()))
		}
		return strings.Compare(a.String(), b.String())
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
