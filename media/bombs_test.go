package media

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"
	"image/png"
)

// bitWriter writes a JPEG entropy-coded segment MSB first, stuffing a zero
// byte after every 0xFF as the format requires.
type bitWriter struct {
	buf   bytes.Buffer
	acc   uint32
	nbits uint
}

func (w *bitWriter) write(bits uint32, n uint) {
	for i := int(n) - 1; i >= 0; i-- {
		w.acc = w.acc<<1 | (bits>>uint(i))&1
		w.nbits++
		if w.nbits == 8 {
			w.flushByte()
		}
	}
}

func (w *bitWriter) flushByte() {
	b := byte(w.acc)
	w.buf.WriteByte(b)
	if b == 0xFF {
		w.buf.WriteByte(0)
	}
	w.acc, w.nbits = 0, 0
}

// pad fills the last byte with 1 bits, as encoders do.
func (w *bitWriter) pad() []byte {
	for w.nbits != 0 {
		w.write(1, 1)
	}
	return w.buf.Bytes()
}

func jpegSegment(b *bytes.Buffer, marker byte, payload []byte) {
	b.Write([]byte{0xFF, marker})
	_ = binary.Write(b, binary.BigEndian, uint16(len(payload)+2))
	b.Write(payload)
}

// progressiveBomb hand-crafts a valid greyscale progressive JPEG of w×h
// pixels with one DC scan and then scans-1 identical AC scans, each of
// which codes every block as part of a few end-of-band runs of 32,767
// blocks: a few bytes per scan, yet the decoder visits every block of the
// image for each scan. This is the shape of the 192 KB, 40 MP,
// 3,000-scan bomb.
func progressiveBomb(w, h, scans int) []byte {
	var b bytes.Buffer
	b.Write([]byte{0xFF, 0xD8})
	dqt := make([]byte, 65)
	for i := 1; i < 65; i++ {
		dqt[i] = 1
	}
	jpegSegment(&b, 0xDB, dqt)
	jpegSegment(&b, 0xC2, []byte{8, byte(h >> 8), byte(h), byte(w >> 8), byte(w), 1, 1, 0x11, 0})
	// DC table 0: one 1-bit code, "0", for category 0 (no difference).
	dht := []byte{0x00, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00}
	// AC table 0: one 1-bit code, "0", for EOBRUN class 14 (+14 bits).
	dht = append(dht, 0x10, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xE0)
	jpegSegment(&b, 0xC4, dht)

	blocks := ((w + 7) / 8) * ((h + 7) / 8)
	// DC first scan: Ss=0, Se=0, Ah/Al=0; one "0" bit per block.
	jpegSegment(&b, 0xDA, []byte{1, 1, 0x00, 0, 0, 0x00})
	var dc bitWriter
	for i := 0; i < blocks; i++ {
		dc.write(0, 1)
	}
	b.Write(dc.pad())
	// AC first scans: Ss=1, Se=63; runs of 32,767 blocks.
	var ac bitWriter
	for left := blocks; left > 0; left -= 32767 {
		run := min(left, 32767)
		ac.write(0, 1)
		ac.write(uint32(run-1<<14), 14)
	}
	acData := ac.pad()
	for i := 1; i < scans; i++ {
		jpegSegment(&b, 0xDA, []byte{1, 1, 0x00, 1, 63, 0x00})
		b.Write(acData)
	}
	b.Write([]byte{0xFF, 0xD9})
	return b.Bytes()
}

// pngChunk appends one PNG chunk with its CRC.
func pngChunk(b *bytes.Buffer, typ string, data []byte) {
	_ = binary.Write(b, binary.BigEndian, uint32(len(data)))
	chunk := append([]byte(typ), data...)
	b.Write(chunk)
	_ = binary.Write(b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
}

// gray16PNG writes a w×h 16-bit greyscale PNG of zeros by hand: every row
// is a filter byte and 2w zero bytes, which zlib squeezes ~1000:1, so a
// 40 MP image is a few hundred KB and takes a fraction of a second to
// build (image/png would need to fill an 80 MB image first).
func gray16PNG(w, h int) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	var ihdr [13]byte
	binary.BigEndian.PutUint32(ihdr[0:], uint32(w))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(h))
	ihdr[8], ihdr[9] = 16, 0 // 16-bit greyscale
	pngChunk(&b, "IHDR", ihdr[:])
	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestSpeed)
	row := make([]byte, 1+2*w)
	for y := 0; y < h; y++ {
		_, _ = zw.Write(row)
	}
	_ = zw.Close()
	pngChunk(&b, "IDAT", z.Bytes())
	pngChunk(&b, "IEND", nil)
	return b.Bytes()
}

var pngEncoderFast = png.Encoder{CompressionLevel: png.BestSpeed}
