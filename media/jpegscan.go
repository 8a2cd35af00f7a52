package media

import (
	"bufio"
	"errors"
	"io"
)

// jpegLayout is what walking a JPEG's markers tells before decoding it.
type jpegLayout struct {
	scans       int   // SOS markers seen (stops counting past the limit)
	progressive bool  // SOF2: the decoder keeps every coefficient in memory
	coeffBytes  int64 // memory the progressive decoder's coefficients need
}

var errJPEGLayout = errors.New("malformed JPEG marker stream")

// walkJPEG counts a JPEG's scans without decoding it, stopping as soon as
// there are more than maxScans. Go's decoder runs over every block of the
// image once per scan, so a progressive file of a few hundred KB with
// thousands of scans (each an end-of-band run costing a few bytes) costs
// tens of CPU-seconds; the count is what lets us refuse it for the price of
// reading its bytes once. It also reads the frame header, to size the
// coefficient buffers a progressive decode allocates (4 bytes per
// coefficient, 64 per 8x8 block, per component).
func walkJPEG(r io.Reader, maxScans int) (jpegLayout, error) {
	var out jpegLayout
	br := bufio.NewReaderSize(r, 32<<10)
	var soi [2]byte
	if _, err := io.ReadFull(br, soi[:]); err != nil || soi != [2]byte{0xFF, 0xD8} {
		return out, errJPEGLayout
	}
	for {
		// Find the next marker: 0xFF, any fill 0xFF bytes, then the code.
		b, err := br.ReadByte()
		if err != nil {
			return out, errJPEGLayout
		}
		if b != 0xFF {
			return out, errJPEGLayout
		}
		m, err := readMarkerCode(br)
		if err != nil {
			return out, err
		}
		for {
			switch {
			case m == 0xD9: // EOI
				return out, nil
			case m >= 0xD0 && m <= 0xD7, m == 0x01: // RSTn, TEM: no length
				goto next
			}
			var lenBuf [2]byte
			if _, err := io.ReadFull(br, lenBuf[:]); err != nil {
				return out, errJPEGLayout
			}
			n := int(lenBuf[0])<<8 | int(lenBuf[1])
			if n < 2 {
				return out, errJPEGLayout
			}
			seg := n - 2
			switch {
			case m == 0xC2 || m == 0xC0 || m == 0xC1:
				hdr := make([]byte, seg)
				if _, err := io.ReadFull(br, hdr); err != nil {
					return out, errJPEGLayout
				}
				out.progressive = out.progressive || m == 0xC2
				if out.progressive {
					out.coeffBytes = coefficientBytes(hdr)
				}
			case m == 0xDA: // SOS, then entropy-coded data up to the next marker
				out.scans++
				if out.scans > maxScans {
					return out, nil
				}
				if _, err := br.Discard(seg); err != nil {
					return out, errJPEGLayout
				}
				m, err = skipEntropyData(br)
				if err != nil {
					return out, err
				}
				continue // m is the marker that ended the scan
			default:
				if _, err := br.Discard(seg); err != nil {
					return out, errJPEGLayout
				}
			}
			break
		}
	next:
	}
}

// readMarkerCode reads a marker's code after its first 0xFF, skipping fill.
func readMarkerCode(br *bufio.Reader) (byte, error) {
	for {
		m, err := br.ReadByte()
		if err != nil {
			return 0, errJPEGLayout
		}
		if m != 0xFF {
			if m == 0x00 {
				return 0, errJPEGLayout
			}
			return m, nil
		}
	}
}

// skipEntropyData reads past a scan's coded data, in which 0xFF is followed
// by 0x00 (a stuffed byte) or a restart marker, and returns the code of the
// marker that ends it.
func skipEntropyData(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.ReadByte()
		if err != nil {
			return 0, errJPEGLayout
		}
		if b != 0xFF {
			continue
		}
		m, err := br.ReadByte()
		for err == nil && m == 0xFF {
			m, err = br.ReadByte()
		}
		if err != nil {
			return 0, errJPEGLayout
		}
		if m == 0x00 || (m >= 0xD0 && m <= 0xD7) {
			continue
		}
		return m, nil
	}
}

// coefficientBytes sizes the coefficient store of a progressive decode from
// a frame header (P, Y, X, Nf, then Nf × (Ci, HiVi, Tqi)), as Go's decoder
// allocates it: per component, its blocks (padded to whole MCUs) × 64 × 4.
func coefficientBytes(hdr []byte) int64 {
	if len(hdr) < 6 {
		return 0
	}
	h, w, nf := int64(hdr[1])<<8|int64(hdr[2]), int64(hdr[3])<<8|int64(hdr[4]), int(hdr[5])
	if len(hdr) < 6+3*nf || nf == 0 {
		return 0
	}
	var hmax, vmax int64 = 1, 1
	for i := 0; i < nf; i++ {
		s := hdr[6+3*i+1]
		hmax, vmax = max(hmax, int64(s>>4)), max(vmax, int64(s&15))
	}
	mcuW, mcuH := (w+8*hmax-1)/(8*hmax), (h+8*vmax-1)/(8*vmax)
	var total int64
	for i := 0; i < nf; i++ {
		s := hdr[6+3*i+1]
		total += mcuW * mcuH * int64(s>>4) * int64(s&15) * 64 * 4
	}
	return total
}
